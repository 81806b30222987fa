/**
 * What the append bench (appends.ts) and each of its writer processes (appender.ts) agree on: the
 * spec a writer is started with, the line it prints at the end, and where it leaves its figures.
 */
import { join } from 'node:path';
import type { NatsLink, SqliteSynchronous } from '../../src/events/index.js';

export type AppendEngine = 'sqlite' | 'jetstream' | 'raw';

export interface AppenderSpec {
  engine: AppendEngine;
  region: string;
  /** sqlite: the bus file and its `synchronous`. */
  sqlite?: { path: string; synchronous: SqliteSynchronous };
  /** jetstream and raw: the region's NATS. */
  nats?: NatsLink;
  /** Appends each writer keeps in flight. */
  inFlight: number;
  seconds: number;
  /** Where each writer leaves its offsets and latencies. */
  out: string;
}

export interface AppenderResult {
  /** The writer's device: its event ids are `<thing>-1`, `<thing>-2`… */
  thing: string;
  appends: number;
  /** From `go` to the last acknowledgement. */
  seconds: number;
  /** Appends answered as a copy of an earlier id (`appended: false`, a JetStream duplicate). */
  copies: number;
}

export const offsetsFile = (out: string, writer: number): string => join(out, `offsets-${writer}.bin`);
export const latenciesFile = (out: string, writer: number): string => join(out, `latencies-${writer}.bin`);
export const writerThing = (writer: number): string => `writer-${writer}`;

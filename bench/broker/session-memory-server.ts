/**
 * The broker whose memory `bench/broker/session-memory.ts` measures, in a process of its own so
 * the clients' memory is not counted: `createBroker` over the bench's SQLite registry and embedded
 * CA, both listeners on free ports of 127.0.0.1, logging at warn. It talks over the IPC channel:
 * it sends `{ type: 'listening', tls, token }`, answers `{ type: 'measure' }` with its memory after
 * collecting garbage, and closes on `{ type: 'close' }` or SIGTERM.
 *
 *   node --expose-gc --import tsx bench/broker/session-memory-server.ts --state-dir D --db F --region R --zone Z
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createBroker } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { RegistryService, SqliteStore } from '../../src/registry/index.js';

/** The measured broker holds every session the bench opens: no derived or default limit in the way. */
const MEASURED_MAX_CONNECTIONS = 1_000_000;
/** Every bench connection comes from 127.0.0.1. */
const CONNECTION_RATE = 1_000_000;
/** Collections per measurement: a second and third one free what the first only unlinked (weak refs, finalizers). */
const GC_ROUNDS = 4;

export interface MemorySample {
  type: 'memory';
  rss: number;
  heapUsed: number;
  /** Buffers and other memory V8 objects hold outside the heap (arrayBuffers included). */
  external: number;
  /** Live device sessions the broker lists. */
  sessions: number;
  /** Descriptors open in the process. */
  openFiles: number;
}

export type ServerMessage = { type: 'listening'; tls: number; token: number } | MemorySample;
export type BenchMessage = { type: 'measure' } | { type: 'close' };

const argsSchema = z.object({
  'state-dir': z.string().min(1),
  db: z.string().min(1),
  region: z.string().min(1),
  zone: z.string().min(1),
});

function send(message: ServerMessage): void {
  process.send?.(message);
}

async function collect(): Promise<void> {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('run with node --expose-gc: the measurement needs a full collection');
  for (let i = 0; i < GC_ROUNDS; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'state-dir': { type: 'string' },
      db: { type: 'string' },
      region: { type: 'string' },
      zone: { type: 'string' },
    },
  });
  const parsed = argsSchema.safeParse(values);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`);
    throw new Error(`bad arguments: ${issues.join('; ')}`);
  }
  if (process.send === undefined)
    throw new Error('start this from bench/broker/session-memory.ts (needs IPC)');
  const args = parsed.data;
  const logger = createLogger({ level: 'warn', name: `bench-session-memory:${args.region}` });
  const ca = await loadOrCreateCa(join(args['state-dir'], 'pki'));
  const store = new SqliteStore({ path: args.db });
  await store.init();
  const service = new RegistryService({ store, region: args.region, ca });
  await service.init();
  const broker = await createBroker({
    region: args.region,
    service,
    ca,
    zone: args.zone,
    host: '127.0.0.1',
    port: 0,
    tokenListener: { port: 0 },
    limits: { maxConnections: MEASURED_MAX_CONNECTIONS, connectionsPerSecondPerAddress: CONNECTION_RATE },
    logger,
  });
  const { tls, token } = await broker.listen();
  if (token === undefined) throw new Error('the token listener did not start');

  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await broker.close();
    await store.close();
    process.disconnect?.();
  };
  process.on('message', (message: BenchMessage) => {
    if (message.type === 'close') {
      void close();
      return;
    }
    void collect().then(() => {
      const memory = process.memoryUsage();
      send({
        type: 'memory',
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        external: memory.external,
        sessions: broker.connections().length,
        openFiles: readdirSync('/proc/self/fd').length,
      });
    });
  });
  process.once('SIGTERM', () => void close());
  process.once('disconnect', () => void close());
  send({ type: 'listening', tls: tls.port, token: token.port });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});

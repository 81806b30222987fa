/**
 * One writer of the append measurement (appends.ts), in a process of its own:
 *
 *   node --import tsx bench/analytics/appender.ts --spec <file> --writer <k>
 *
 * The spec (JSON, written by the bench, mode 0600: it holds a TLS key) names the engine and how
 * to reach the bus. The writer opens its bus or connection, prints `ready`, waits for `go` on
 * stdin, then appends telemetry events of its own device `writer-<k>` (ids writer-<k>-1, 2, 3…)
 * for the spec's seconds with the spec's appends in flight. It leaves the offset each append got
 * (in the order of its ids) and the sorted latencies in `<out>/offsets-<k>.bin` and
 * `<out>/latencies-<k>.bin` (Float64Array), then prints one line `result <json>`.
 *
 * Engines: `sqlite` SqliteEventBus.append; `jetstream` JetStreamEventBus.append; `raw` the
 * ceiling: `js.publish(subject, bytes, { msgID })` on a plain JetStream client, the bytes encoded
 * before the clock starts (a ring of 1,024 encoded events, each publish with its own msgID), no
 * validation.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import {
  connectNats,
  encodeEvent,
  eventSubject,
  JetStreamEventBus,
  SqliteEventBus,
} from '../../src/events/index.js';
import { drive } from '../registry/common.js';
import { telemetryEvent } from './load.js';
import { type AppenderResult, type AppenderSpec, latenciesFile, offsetsFile, writerThing } from './writer.js';

/** More appends than any engine takes per second here: the size of the writer's arrays. */
const MAX_APPENDS_PER_SECOND = 250_000;
const RAW_RING = 1024;

interface Appender {
  /** Appends the writer's i-th event (id `<thing>-<i + 1>`): its offset and whether it was new. */
  append(i: number): Promise<{ offset: number; appended: boolean }>;
  close(): Promise<void>;
}

async function openAppender(spec: AppenderSpec, thing: string): Promise<Appender> {
  if (spec.engine === 'sqlite') {
    if (spec.sqlite === undefined) throw new Error('spec: sqlite needs sqlite.path');
    const bus = await SqliteEventBus.open({
      path: spec.sqlite.path,
      region: spec.region,
      synchronous: spec.sqlite.synchronous,
      retention: { intervalMs: 0 },
    });
    return {
      append: (i) => bus.append(telemetryEvent(thing, i + 1, Date.now())),
      close: () => bus.close(),
    };
  }
  if (spec.nats === undefined) throw new Error(`spec: ${spec.engine} needs nats`);
  if (spec.engine === 'jetstream') {
    const bus = await JetStreamEventBus.open({ region: spec.region, nats: spec.nats });
    return {
      append: (i) => bus.append(telemetryEvent(thing, i + 1, Date.now())),
      close: () => bus.close(),
    };
  }
  const nc = await connectNats(spec.nats);
  const js = jetstream(nc);
  const subject = eventSubject(spec.region);
  const now = Date.now();
  const ring = Array.from({ length: RAW_RING }, (_, i) => encodeEvent(telemetryEvent(thing, i + 1, now)));
  return {
    append: async (i) => {
      const ack = await js.publish(subject, ring[i % RAW_RING], { msgID: `${thing}-${i + 1}` });
      return { offset: ack.seq, appended: !ack.duplicate };
    },
    close: () => nc.drain(),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { spec: { type: 'string' }, writer: { type: 'string' } } });
  const writer = Number(values.writer);
  if (values.spec === undefined || !Number.isInteger(writer) || writer < 0) {
    console.error('usage: appender.ts --spec <file> --writer <k>');
    return 2;
  }
  const spec = JSON.parse(await readFile(values.spec, 'utf8')) as AppenderSpec;
  const thing = writerThing(writer);
  const appender = await openAppender(spec, thing);
  try {
    const lines = createInterface({ input: process.stdin });
    const go = new Promise<boolean>((resolve) => {
      lines.once('line', (line) => resolve(line.trim() === 'go'));
      // The bench went away before the start: nothing to do.
      lines.once('close', () => resolve(false));
    });
    console.log('ready');
    if (!(await go)) return 1;
    lines.close();
    const maxOps = Math.ceil(spec.seconds * MAX_APPENDS_PER_SECOND);
    const offsets = new Float64Array(maxOps);
    let copies = 0;
    const run = await drive(spec.inFlight, spec.seconds * 1000, maxOps, async (i) => {
      const result = await appender.append(i);
      offsets[i] = result.offset;
      if (!result.appended) copies++;
    });
    await writeFile(offsetsFile(spec.out, writer), offsets.subarray(0, run.ops));
    await writeFile(latenciesFile(spec.out, writer), run.latenciesMs);
    const result: AppenderResult = { thing, appends: run.ops, seconds: run.seconds, copies };
    console.log(`result ${JSON.stringify(result)}`);
    return 0;
  } finally {
    await appender.close();
  }
}

process.exitCode = await main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  return 1;
});

/**
 * Appends per second on each bus engine (see run.ts), every writer a process of its own
 * (appender.ts): SQLite from its one writer, JetStream from 1 process and from N at once, and
 * beside them the ceiling, a raw JetStream publish of the same bytes from 1 process. Each run
 * starts on a fresh bus (a new SQLite file; the stream deleted and made again), and every offset
 * an append got is checked against what the bus holds afterwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import {
  connectNats,
  encodeEvent,
  eventStreamConfig,
  eventStreamName,
  MAX_READ_BATCH,
  SqliteEventBus,
} from '../../src/events/index.js';
import { DEFAULT_SQLITE_SYNCHRONOUS } from '../../src/registry/index.js';
import { natsVersion, type RunningNats, startNats } from '../../test/harness/nats.js';
import { ROOT } from '../../test/harness/process.js';
import { Cleanup, check, percentile } from '../registry/common.js';
import { int, ms } from '../replication/report.js';
import { telemetryEvent } from './load.js';
import type { EngineRow } from './report.js';
import { type Engine, type Measured, REGION } from './scenario.js';
import {
  type AppendEngine,
  type AppenderResult,
  type AppenderSpec,
  latenciesFile,
  offsetsFile,
  writerThing,
} from './writer.js';

/** How long a writer may take to open its bus (tsx compiles the sources on its first start). */
const READY_TIMEOUT_MS = 60_000;
/** How long past its seconds a writer may take to finish its appends and leave its files. */
const FINISH_GRACE_MS = 60_000;

export interface AppendOptions {
  engines: readonly Engine[];
  /** JetStream writer processes at once for the N-process row. */
  writers: number;
  /** Appends each writer keeps in flight. */
  inFlight: number;
  seconds: number;
  cleanup: Cleanup;
  log: (line: string) => void;
}

interface Run {
  engine: AppendEngine;
  writers: number;
}

/** How a writer reaches the run's bus. */
type BusLink = Pick<AppenderSpec, 'sqlite' | 'nats'>;

interface RunResult {
  appends: number;
  /** The slowest writer's time from `go` to its last acknowledgement. */
  seconds: number;
  /** Every writer's append latencies, ascending. */
  latencies: Float64Array;
}

/** A writer process: `ready` once its bus is open; `result()` once it finished, after `go()`. */
interface Writer {
  ready: Promise<void>;
  go(): void;
  result(): Promise<AppenderResult>;
}

function startWriter(specFile: string, writer: number, finishMs: number, cleanup: Cleanup): Writer {
  const script = join(ROOT, 'bench/analytics/appender.ts');
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', script, '--spec', specFile, '--writer', String(writer)],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  cleanup.defer(`stop writer ${writer} (pid ${child.pid})`, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  // 'close', not 'exit': it comes after the last line of stdout was read.
  const exited = new Promise<string>((resolve) =>
    child.once('close', (code, signal) =>
      resolve(`writer ${writer} exited with ${code ?? signal}:\n${stderr}`),
    ),
  );
  let onReady: () => void = () => {};
  let onResult: (r: AppenderResult) => void = () => {};
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  const result = new Promise<AppenderResult>((resolve) => {
    onResult = resolve;
  });
  if (child.stdout === null) throw new Error('the writer has no stdout');
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') onReady();
    else if (line.startsWith('result ')) onResult(JSON.parse(line.slice('result '.length)) as AppenderResult);
  });
  /** `p`, or a failure when the writer exits first or `ms` pass. */
  const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      exited.then((why) => Promise.reject(new Error(why))),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`writer ${writer}: no ${what} within ${ms} ms:\n${stderr}`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  };
  return {
    ready: within(ready, READY_TIMEOUT_MS, 'ready'),
    go: () => child.stdin?.end('go\n'),
    result: () => within(result, finishMs, 'result'),
  };
}

async function readFloats(path: string): Promise<Float64Array> {
  const bytes = await readFile(path);
  return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
}

/**
 * Which id each offset went to, from every writer's offsets; checks they cover 1..total with none
 * given twice. Index 0 is unused.
 */
function idsByOffset(label: string, offsets: Array<{ thing: string; offsets: Float64Array }>): string[] {
  const total = offsets.reduce((n, w) => n + w.offsets.length, 0);
  const ids = new Array<string>(total + 1);
  for (const w of offsets) {
    for (let i = 0; i < w.offsets.length; i++) {
      const offset = w.offsets[i] ?? Number.NaN;
      check(
        Number.isInteger(offset) && offset >= 1 && offset <= total,
        `${label}: ${w.thing}-${i + 1} got offset ${offset}, outside 1..${total}`,
      );
      check(
        ids[offset] === undefined,
        `${label}: offset ${offset} given to ${ids[offset]} and ${w.thing}-${i + 1}`,
      );
      ids[offset] = `${w.thing}-${i + 1}`;
    }
  }
  // total offsets, each in 1..total and none twice: every one of 1..total was given, no gap.
  return ids;
}

/** The ids the SQLite bus at `path` holds, by offset. */
async function sqliteIds(path: string): Promise<string[]> {
  const bus = await SqliteEventBus.open({ path, region: REGION, retention: { intervalMs: 0 } });
  try {
    const ids: string[] = [];
    for (let from = 1; ; ) {
      const page = await bus.read({ from, limit: MAX_READ_BATCH });
      for (const e of page.events) ids[e.offset] = e.id;
      if (page.events.length === 0 || page.next > page.lastOffset) return ids;
      from = page.next;
    }
  } finally {
    await bus.close();
  }
}

/** The `Nats-Msg-Id` of every message of the stream, by sequence, read with an ordered consumer. */
async function streamIds(js: JetStreamClient, jsm: JetStreamManager): Promise<string[]> {
  const stream = eventStreamName(REGION);
  const last = (await jsm.streams.info(stream)).state.last_seq;
  const ids: string[] = [];
  if (last === 0) return ids;
  const consumer = await js.consumers.get(stream);
  const messages = await consumer.consume();
  for await (const m of messages) {
    ids[m.seq] = m.headers?.get('Nats-Msg-Id') ?? '';
    if (m.seq >= last) break;
  }
  return ids;
}

/** Deletes the region's stream and makes it again as a region would: every run starts empty. */
async function freshStream(jsm: JetStreamManager): Promise<void> {
  const name = eventStreamName(REGION);
  try {
    await jsm.streams.delete(name);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
  }
  await jsm.streams.add(eventStreamConfig(REGION, {}));
}

export async function measureAppends(options: AppendOptions): Promise<Measured> {
  const scoped = new Cleanup();
  const release = options.cleanup.defer('the append runs', () => scoped.runAll());
  try {
    return await appends(options, scoped);
  } finally {
    await release();
  }
}

async function appends(options: AppendOptions, cleanup: Cleanup): Promise<Measured> {
  const { inFlight, seconds, log } = options;
  const home = await mkdtemp(join(tmpdir(), 'iotdr-bench-appends-'));
  cleanup.defer(`remove ${home}`, () => rm(home, { recursive: true, force: true }));
  const rows: EngineRow[] = [];
  const notes: string[] = [];
  const bytes = encodeEvent(telemetryEvent(writerThing(0), 1, Date.now())).length;
  notes.push(
    `appends: each event as the telemetry rule writes it (a ~100-byte JSON payload), ${bytes} bytes as a stream message; ` +
      `every writer a process of its own (node --import tsx bench/analytics/appender.ts) with ${inFlight} appends in flight`,
  );

  let runs = 0;
  /** `prepare` makes the fresh bus and says how to reach it; `stored` reads its ids back by offset. */
  const measure = async (
    run: Run,
    prepare: () => Promise<BusLink>,
    stored: () => Promise<string[]>,
  ): Promise<RunResult> => {
    const label = `${run.engine}, ${run.writers} writer${run.writers > 1 ? 's' : ''}`;
    log(`appends: ${label}, ${inFlight} in flight each, ${seconds} s`);
    const out = join(home, `run-${++runs}`);
    await mkdir(out, { recursive: true });
    const spec: AppenderSpec = {
      engine: run.engine,
      region: REGION,
      inFlight,
      seconds,
      out,
      ...(await prepare()),
    };
    const specFile = join(out, 'spec.json');
    await writeFile(specFile, JSON.stringify(spec), { mode: 0o600 });
    const finishMs = seconds * 1000 + FINISH_GRACE_MS;
    const writers = Array.from({ length: run.writers }, (_, k) =>
      startWriter(specFile, k, finishMs, cleanup),
    );
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.go();
    const results = await Promise.all(writers.map((w) => w.result()));
    const offsets = await Promise.all(
      results.map(async (r, k) => ({ thing: r.thing, offsets: await readFloats(offsetsFile(out, k)) })),
    );
    for (const r of results)
      check(r.copies === 0, `${label}: ${r.copies} appends of ${r.thing} answered as copies`);
    const expected = idsByOffset(label, offsets);
    const total = expected.length - 1;
    // What the bus holds: exactly those offsets, each with the id that was told it.
    const held = await stored();
    check(
      held.length - 1 === total,
      `${label}: the bus holds offsets up to ${held.length - 1}, ${total} appended`,
    );
    for (let offset = 1; offset <= total; offset++)
      check(
        held[offset] === expected[offset],
        `${label}: offset ${offset} holds ${held[offset]}, ${expected[offset]} was told it`,
      );
    const latencies = new Float64Array(total);
    let at = 0;
    for (let k = 0; k < results.length; k++) {
      const mine = await readFloats(latenciesFile(out, k));
      latencies.set(mine, at);
      at += mine.length;
    }
    latencies.sort();
    return { appends: total, seconds: Math.max(...results.map((r) => r.seconds)), latencies };
  };
  const rate = (r: RunResult) => r.appends / r.seconds;
  const latency = (r: RunResult) =>
    `p50 ${ms(percentile(r.latencies, 0.5))} ms, p99 ${ms(percentile(r.latencies, 0.99))} ms`;

  if (options.engines.includes('sqlite')) {
    const path = join(home, 'sqlite', 'events.db');
    const r = await measure(
      { engine: 'sqlite', writers: 1 },
      async () => ({ sqlite: { path, synchronous: DEFAULT_SQLITE_SYNCHRONOUS } }),
      () => sqliteIds(path),
    );
    rows.push({
      engine: 'sqlite',
      figure: 'appends, SqliteEventBus.append',
      setting: `1 process (the bus's only writer), ${inFlight} in flight, synchronous=${DEFAULT_SQLITE_SYNCHRONOUS}`,
      work: `${int(r.appends)} appends`,
      seconds: r.seconds,
      result: `${int(rate(r))} appends/s; ${latency(r)}`,
    });
  }

  if (options.engines.includes('jetstream')) {
    log('appends: starting a NATS (one nats-server, JetStream)');
    const nats: RunningNats = await startNats();
    cleanup.defer('stop the appends NATS', () => nats.stop());
    const nc = await connectNats(nats.link('iotdr bench appends'));
    cleanup.defer('close the appends NATS connection', () => nc.close());
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const onStream = (engine: AppendEngine, writers: number) =>
      measure(
        { engine, writers },
        async () => {
          await freshStream(jsm);
          return { nats: nats.link(`iotdr bench ${engine} writer`) };
        },
        () => streamIds(js, jsm),
      );
    const raw = await onStream('raw', 1);
    const one = await onStream('jetstream', 1);
    const many = await onStream('jetstream', options.writers);
    const ofRaw = (r: RunResult) => `${(rate(r) / rate(raw)).toFixed(2)} × raw`;
    rows.push(
      {
        engine: 'jetstream',
        figure: 'appends, JetStreamEventBus.append',
        setting: `1 process, ${inFlight} in flight`,
        work: `${int(one.appends)} appends`,
        seconds: one.seconds,
        result: `${int(rate(one))} appends/s (${ofRaw(one)}); ${latency(one)}`,
      },
      {
        engine: 'jetstream',
        figure: 'appends, JetStreamEventBus.append',
        setting: `${options.writers} processes at once, ${inFlight} in flight each`,
        work: `${int(many.appends)} appends`,
        seconds: many.seconds,
        result: `${int(rate(many))} appends/s (${ofRaw(many)}); ${latency(many)}`,
      },
      {
        engine: 'jetstream',
        figure: 'ceiling: raw js.publish, same bytes',
        setting: `1 process, ${inFlight} in flight, msgID, no encoding or checks`,
        work: `${int(raw.appends)} publishes`,
        seconds: raw.seconds,
        result: `${int(rate(raw))} publishes/s; ${latency(raw)}`,
      },
    );
    notes.push(
      `appends: ${natsVersion()}, one server, stream ${eventStreamName(REGION)} as a region makes it ` +
        '(file storage, 1 replica), deleted and made again before each run; mutual TLS',
    );
  }
  notes.push(
    'appends checked: no append answered as a copy; the offsets the writers were told cover 1..total, none twice; ' +
      'the bus afterwards holds exactly those offsets, each with the id that was told it',
  );
  return { rows, notes };
}

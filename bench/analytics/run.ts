/**
 * Analytics ingestion against one real region, and appends per second, on each event-bus engine
 * (`npm run bench:analytics`); one table, each row under its engine.
 *
 * On each engine in turn (SQLite, then JetStream), on a fresh state (scenario.ts):
 * (a) catch-up: 100,000 telemetry events (4 devices, each numbering its messages 1, 2, 3…) are
 *     appended straight to the region's bus before analytics starts — the same events the
 *     region's telemetry rule writes. SQLite: to the bus database before the region starts
 *     (SqliteEventBus, its one writer then). JetStream: to the region's stream in a fresh NATS of
 *     its own (one nats-server, `events.engine: jetstream`, `regions[].nats` pointing at it) with
 *     JetStreamEventBus: the stream filled while analytics was down, before it (and its durable
 *     consumer) starts. Then `iotdr region` runs as a child process and `startAnalytics`
 *     (src/analytics) starts in this process. The clock runs from the call of `startAnalytics`
 *     until `/v1/totals` counts every event: events/s.
 * (b) steady state: 4 other devices, onboarded through the cnc API and connected over mTLS
 *     (mqtt.js), publish 1,000 messages/s in all for 10 s (QoS 1) on `devices/<thing>/telemetry`,
 *     which the region's default rule puts on its bus. Every 25 ms the bench reads `/v1/ingest`
 *     (lagMs: age of the oldest unread event at the last read) and `/v1/totals`; the k-th
 *     message published counts as visible at the first read where totals hold k live messages.
 *
 * Then appends per second (appends.ts), every writer a process of its own (appender.ts) keeping
 * 256 appends in flight for 5 s, each run on a fresh bus:
 * - sqlite: `SqliteEventBus.append` from 1 process — its only writer, as in a region;
 * - jetstream: `JetStreamEventBus.append` from 1 process, and from `--writers` processes at once,
 *   each with its own connection, to one nats-server;
 * - beside them the ceiling of the client and server on this machine: a raw
 *   `js.publish(subject, bytes, { msgID })` of the same bytes from 1 process (no iotdr encoding,
 *   no validation); each JetStream row gives its ratio to it.
 *
 * Options: `--engines sqlite,jetstream` (default both), `--events N` backlog of (a) (default
 * 100000), `--rate R` and `--seconds S` for (b) (default 1000/s for 10 s), `--writers N` JetStream
 * writer processes (default 2), `--in-flight W` appends in flight per writer (default 256),
 * `--append-seconds S` (default 5).
 *
 * Checks (a failed one ends the run with exit status 1): every PUBACK arrived; totals.messages
 * equals the distinct messages appended and published, no duplicates, no device with a gap, the
 * expected number of devices; the ingestor ends `ingesting`; the region exits 0 on SIGTERM. For
 * the appends: none answered as a copy of an earlier id; the offsets the writers were told cover
 * 1..total, none twice; the bus then holds exactly those offsets, each with the id told it.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Cleanup, machine } from '../registry/common.js';
import { measureAppends } from './appends.js';
import { type EngineRow, engineTable } from './report.js';
import { type Engine, runScenario } from './scenario.js';

const ENGINES: readonly Engine[] = ['sqlite', 'jetstream'];

function positive(name: string, value: string | undefined, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new Error(`--${name} must be in (0, ${max}], got ${value}`);
  return n;
}

function enginesOf(value: string | undefined): Engine[] {
  const names = (value ?? '').split(',').map((s) => s.trim());
  const engines = ENGINES.filter((e) => names.includes(e));
  const unknown = names.filter((n) => !(ENGINES as readonly string[]).includes(n));
  if (unknown.length > 0 || engines.length === 0)
    throw new Error(`--engines takes a list of ${ENGINES.join(', ')}, got ${value}`);
  return engines;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      engines: { type: 'string', default: ENGINES.join(',') },
      events: { type: 'string', default: '100000' },
      rate: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '10' },
      writers: { type: 'string', default: '2' },
      'in-flight': { type: 'string', default: '256' },
      'append-seconds': { type: 'string', default: '5' },
    },
  });
  let engines: Engine[];
  let events: number;
  let rate: number;
  let seconds: number;
  let writers: number;
  let inFlight: number;
  let appendSeconds: number;
  try {
    engines = enginesOf(values.engines);
    events = Math.floor(positive('events', values.events, 10_000_000));
    rate = positive('rate', values.rate, 20_000);
    seconds = positive('seconds', values.seconds, 120);
    writers = Math.floor(positive('writers', values.writers, 16));
    inFlight = Math.floor(positive('in-flight', values['in-flight'], 10_000));
    appendSeconds = positive('append-seconds', values['append-seconds'], 120);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const started = process.hrtime.bigint();
  const cleanup = new Cleanup();
  let interrupted = false;
  // Ctrl-C reaches this process twice (from the terminal and relayed by tsx): every signal is
  // caught, and only the first starts the cleanup, so a second one cannot kill it half-way.
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: cleaning up`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const log = (line: string) => console.error(`… ${line}`);
  const rows: EngineRow[] = [];
  const notes: string[] = [];
  try {
    console.log(machine().join('\n'));
    console.log(`load:    ${loadavg()[0]?.toFixed(2)} (1-minute average at the start)`);
    for (const engine of engines) {
      const measured = await runScenario({ engine, events, rate, seconds, cleanup, log });
      rows.push(...measured.rows);
      notes.push(...measured.notes);
    }
    const appended = await measureAppends({
      engines,
      writers,
      inFlight,
      seconds: appendSeconds,
      cleanup,
      log,
    });
    rows.push(...appended.rows);
    notes.push(
      ...appended.notes,
      'lagMs is the age of the oldest event a read left unread, 0 whenever a read reached the end of the bus',
      'visibility is read every 25 ms, so it includes up to one read interval plus the read itself',
    );

    console.log('');
    console.log(engineTable(rows));
    console.log('');
    for (const note of notes) console.log(`- ${note}`);
    console.log(`load:    ${loadavg()[0]?.toFixed(2)} (1-minute average at the end)`);
    return 0;
  } catch (error) {
    if (!interrupted) console.error(error instanceof Error ? error.message : error);
    return 1;
  } finally {
    await cleanup.runAll();
    if (!interrupted)
      console.log(`total:   ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
  }
}

process.exitCode = await main();

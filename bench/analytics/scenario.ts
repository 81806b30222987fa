/**
 * One engine's run of the analytics scenario (see run.ts): a region whose bus is SQLite or a
 * JetStream stream in a NATS of its own, a backlog on that bus before analytics starts (catch-up),
 * then devices over MQTT at a steady rate (publish → visible, lag). Everything it starts is
 * stopped before it returns, also after a failure.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { eventStreamName, JetStreamEventBus, SqliteEventBus } from '../../src/events/index.js';
import { siteUri } from '../../src/pki/index.js';
import { ANALYTICS_SITE, type RunningAnalytics, startAnalytics } from '../../src/processes/index.js';
import { type RunningNats, startNats } from '../../test/harness/nats.js';
import { freePort } from '../../test/harness/process.js';
import type { OnboardedDevice } from '../commands/load.js';
import { Client, HOST, printed, startBenchRegion } from '../commands/region.js';
import { Cleanup, check, percentile } from '../registry/common.js';
import { int, ms } from '../replication/report.js';
import { appendBacklog, connectDevice, paced } from './load.js';
import type { EngineRow } from './report.js';

export type Engine = 'sqlite' | 'jetstream';

export const REGION = 'us-east';
const TEMPLATE = 'fleet-device';
const BACKLOG_DEVICES = 4;
const LIVE_DEVICES = 4;
const POLL_MS = 25;
const CATCH_UP_TIMEOUT_MS = 600_000;
const SETTLE_TIMEOUT_MS = 60_000;

export interface ScenarioOptions {
  engine: Engine;
  /** Backlog of (a), events. */
  events: number;
  /** Steady load of (b): messages/s in all, for `seconds`. */
  rate: number;
  seconds: number;
  /** The run's cleanup stack: what this run starts is on it until the run ends. */
  cleanup: Cleanup;
  log: (line: string) => void;
}

export interface Measured {
  rows: EngineRow[];
  notes: string[];
}

/** The fields of `GET /v1/ingest` the bench reads. */
interface Ingest {
  items?: Array<{ lagMs?: number | null; lagEvents?: number | null; state?: { type: string } }>;
}

interface Totals {
  messages: number;
  duplicates: number;
  devices: number;
  devicesWithGaps: number;
  missing: number;
}

/** The bus of the region before it starts, opened here for the backlog and closed after it. */
async function withBacklog(engine: Engine, home: string, nats: RunningNats | undefined, events: number) {
  const devices = Array.from({ length: BACKLOG_DEVICES }, (_, i) => `backlog-${i}`);
  // The region's bus options are the defaults, so the stream made here is the one it keeps.
  const bus =
    engine === 'sqlite'
      ? await SqliteEventBus.open({
          path: join(home, 'regions', REGION, 'events.db'),
          region: REGION,
          synchronous: 'normal',
          retention: { intervalMs: 0 },
        })
      : await JetStreamEventBus.open({
          region: REGION,
          nats: (nats as RunningNats).link('iotdr bench backlog'),
        });
  try {
    await appendBacklog(bus, devices, events);
  } finally {
    await bus.close();
  }
}

export async function runScenario(options: ScenarioOptions): Promise<Measured> {
  const scoped = new Cleanup();
  const release = options.cleanup.defer(`the ${options.engine} run`, () => scoped.runAll());
  try {
    return await scenario(options, scoped);
  } finally {
    await release();
  }
}

async function scenario(options: ScenarioOptions, cleanup: Cleanup): Promise<Measured> {
  const { engine, events, rate, seconds, log } = options;
  const rows: EngineRow[] = [];
  const notes: string[] = [];
  const home = await mkdtemp(join(tmpdir(), `iotdr-bench-analytics-${engine}-`));
  cleanup.defer(`remove ${home}`, () => rm(home, { recursive: true, force: true }));

  let nats: RunningNats | undefined;
  if (engine === 'jetstream') {
    log('starting a NATS for the region (one nats-server, JetStream)');
    // Its certificates from the region's CA (made here in <home>/pki, which the region then uses);
    // the region writes, analytics only reads, as `iotdr nats` maps them.
    const started = await startNats({
      stateDir: home,
      clients: {
        writers: [siteUri({ kind: 'region', name: REGION })],
        readers: [siteUri({ kind: 'analytics', name: ANALYTICS_SITE })],
      },
    });
    nats = started;
    cleanup.defer('stop NATS', () => started.stop());
  }

  log(`appending ${int(events)} events to the ${engine} bus (not timed)`);
  await withBacklog(engine, home, nats, events);

  log(`starting iotdr region (events on ${engine})`);
  const analyticsPort = await freePort();
  const natsPort = nats === undefined ? undefined : Number(new URL(nats.servers[0] ?? '').port);
  const region = await startBenchRegion({
    home,
    name: REGION,
    cleanup,
    config: {
      // The region's analytics checkpoint asks this listener; control is not started (the
      // decision-log mirror retries against a closed port, off the measured path).
      analytics: { address: HOST, port: analyticsPort },
      control: { address: HOST, port: await freePort() },
      ...(engine === 'jetstream' ? { events: { engine: 'jetstream' } } : {}),
    },
    ...(natsPort === undefined
      ? {}
      : { region: { nats: { servers: [{ name: 'nats-1', address: HOST, clientPort: natsPort }] } } }),
  });
  notes.push(
    engine === 'sqlite'
      ? `region: ${region.command} (bus: SQLite synchronous=full; logging warn)`
      : `region: ${region.command} (bus: stream ${eventStreamName(REGION)}, file storage, 1 replica, ` +
          `on 1 nats-server over mutual TLS; logging warn)`,
  );
  const config = parseConfig(region.config);

  log(`catch-up: startAnalytics on a fresh state (${engine})`);
  const t0 = performance.now();
  const analytics: RunningAnalytics = await startAnalytics({
    config,
    stateDir: home,
    logger: createLogger({ level: 'error', name: 'analytics' }),
    listen: { host: HOST, port: analyticsPort },
    dashboard: false,
  });
  const stopAnalytics = cleanup.defer('stop analytics', () => analytics.stop());
  const reader = new Client(analyticsPort, region.adminToken, 4, region.apiCa);
  cleanup.defer('close analytics client', () => reader.close());
  const totals = (): Promise<Totals> => reader.json<Totals>('GET', '/v1/totals', 200);
  // /v1/ingest is read beside /v1/totals to show what lagMs says while analytics is behind.
  let catchUpLag = { ms: 0, events: 0 };
  for (;;) {
    const [t, ingest] = await Promise.all([totals(), reader.json<Ingest>('GET', '/v1/ingest', 200)]);
    const status = ingest.items?.[0];
    catchUpLag = {
      ms: Math.max(catchUpLag.ms, status?.lagMs ?? 0),
      events: Math.max(catchUpLag.events, status?.lagEvents ?? 0),
    };
    if (t.messages >= events) break;
    check(performance.now() - t0 < CATCH_UP_TIMEOUT_MS, `analytics counted ${t.messages} of ${events}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const catchUpS = (performance.now() - t0) / 1000;
  rows.push({
    engine,
    figure: 'ingest, 0 → caught up',
    setting:
      engine === 'sqlite'
        ? `${BACKLOG_DEVICES} devices, backlog on the bus, read over the region's long poll`
        : `${BACKLOG_DEVICES} devices, backlog on the stream while analytics was down, durable consumer`,
    work: `${int(events)} events`,
    seconds: catchUpS,
    result: `${int(events / catchUpS)} events/s`,
  });

  log(`steady state: ${LIVE_DEVICES} devices over MQTT, ${rate}/s for ${seconds} s (${engine})`);
  const cnc = new Client(region.cncPort, region.adminToken, 2);
  cleanup.defer('close cnc client', () => cnc.close());
  const api = new Client(region.apiPort, region.adminToken, 1, region.apiCa);
  cleanup.defer('close API client', () => api.close());
  await api.json('PUT', `/v1/policies/${TEMPLATE}`, 201, { policyDocument: DEVICE_POLICY_TEMPLATE() });
  const clients: Array<{ client: MqttClient; thing: string }> = [];
  cleanup.defer('disconnect devices', async () => {
    await Promise.all(clients.map((c) => c.client.endAsync(true).catch(() => {})));
  });
  for (let i = 0; i < LIVE_DEVICES; i++) {
    const device = await cnc.json<OnboardedDevice>('POST', '/v1/devices', 201, {
      thingName: `live-${i}`,
      template: TEMPLATE,
    });
    clients.push({
      client: await connectDevice(region.mqttPort, region.caPem, device),
      thing: device.thingName,
    });
  }

  // The poller: lagMs from /v1/ingest, the live count from /v1/totals, each read every POLL_MS.
  const lagSamples: number[] = [];
  let maxLagEvents = 0;
  const seen: Array<{ at: number; live: number }> = [];
  let polling = true;
  let expectedLive = Number.POSITIVE_INFINITY;
  const poller = (async () => {
    while (polling) {
      const [ingest, t] = await Promise.all([reader.json<Ingest>('GET', '/v1/ingest', 200), totals()]);
      const at = performance.now();
      const status = ingest.items?.[0];
      if (typeof status?.lagMs === 'number') lagSamples.push(status.lagMs);
      if (typeof status?.lagEvents === 'number') maxLagEvents = Math.max(maxLagEvents, status.lagEvents);
      seen.push({ at, live: t.messages - events });
      if (t.messages - events >= expectedLive) return;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  // Awaited below; this only keeps a failed read from counting as unhandled in the meantime.
  poller.catch(() => {});
  const published = await paced(clients, rate, seconds);
  expectedLive = published.count;
  const settle = setTimeout(() => {
    polling = false;
  }, SETTLE_TIMEOUT_MS);
  await poller;
  clearTimeout(settle);
  const last = seen[seen.length - 1];
  check(
    last !== undefined && last.live === published.count,
    `${engine}: analytics counted ${last?.live} live messages, ${published.count} were published and acknowledged`,
  );

  // The k-th message is visible at the first read that counted k live messages.
  const visible = new Float64Array(published.count);
  let read = 0;
  for (let k = 0; k < published.count; k++) {
    while ((seen[read]?.live ?? Number.POSITIVE_INFINITY) < k + 1) read++;
    visible[k] = (seen[read]?.at ?? Number.NaN) - (published.sentAt[k] ?? Number.NaN);
  }
  visible.sort();
  const lags = Float64Array.from(lagSamples).sort();
  const latency = (a: Float64Array) =>
    `p50 ${ms(percentile(a, 0.5))} ms, p99 ${ms(percentile(a, 0.99))} ms, max ${ms(a[a.length - 1] ?? Number.NaN)} ms`;
  const steady = `${LIVE_DEVICES} devices, ${int(rate)} msg/s QoS1`;
  rows.push({
    engine,
    figure: 'steady lag, /v1/ingest lagMs',
    setting: steady,
    work: `${lags.length} reads`,
    seconds,
    result: latency(lags),
  });
  rows.push({
    engine,
    figure: 'steady lag, publish → /v1/totals',
    setting: steady,
    work: `${int(published.count)} msgs`,
    seconds,
    result: latency(visible),
  });

  const final = await totals();
  const expected = events + published.count;
  check(
    final.messages === expected,
    `${engine}: totals.messages ${final.messages}, ${expected} distinct messages sent`,
  );
  check(final.duplicates === 0, `${engine}: ${final.duplicates} duplicates`);
  check(
    final.devicesWithGaps === 0 && final.missing === 0,
    `${engine}: ${final.devicesWithGaps} devices with gaps`,
  );
  check(
    final.devices === BACKLOG_DEVICES + LIVE_DEVICES,
    `${engine}: ${final.devices} devices, ${BACKLOG_DEVICES + LIVE_DEVICES} sent`,
  );
  const status = (await reader.json<Ingest>('GET', '/v1/ingest', 200)).items?.[0];
  check(status?.state?.type === 'ingesting', `${engine}: ingestion ended ${JSON.stringify(status?.state)}`);
  notes.push(
    `during the catch-up /v1/ingest showed lagMs up to ${int(catchUpLag.ms)} ms and lagEvents up to ${int(catchUpLag.events)}`,
    `totals after the run: ${int(final.messages)} messages, ${final.duplicates} duplicates, ` +
      `${final.devices} devices, ${final.devicesWithGaps} with gaps`,
    `/v1/ingest lagEvents at most ${maxLagEvents} in the steady state`,
  );

  await Promise.all(clients.map((c) => c.client.endAsync(true)));
  clients.length = 0;
  await stopAnalytics();
  const exit = await region.stop();
  check(exit === 0, `${engine}: the region exited with ${exit}:\n${region.output()}`);
  notes.push(...printed(region.output()).map((line) => `region printed: ${line}`));
  return { rows, notes: notes.map((note) => `${engine}: ${note}`) };
}

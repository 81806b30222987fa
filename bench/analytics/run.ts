/**
 * Analytics ingestion against one real region (`npm run bench:analytics`):
 *
 * (a) catch-up: 100,000 telemetry events (4 devices, each numbering its messages 1, 2, 3…) are
 *     appended straight to the region's bus database before the region starts (SqliteEventBus, the
 *     same events the region's telemetry rule writes); then `iotdr region` runs as a child process
 *     and `startAnalytics` (src/analytics) starts in this process on a fresh state. The clock runs
 *     from the call of `startAnalytics` until `/v1/totals` counts every event: events/s.
 * (b) steady state: 4 other devices, onboarded through the cnc API and connected over mTLS
 *     (mqtt.js), publish 1,000 messages/s in all for 10 s (QoS 1) on `devices/<thing>/telemetry`,
 *     which the region's default rule puts on its bus. Every 25 ms the bench reads `/v1/ingest`
 *     (lagMs: age of the oldest unread event at the last read) and `/v1/totals`; the k-th
 *     message published counts as visible at the first read where totals hold k live messages.
 *
 * Options: `--events N` backlog of (a) (default 100000), `--rate R` and `--seconds S` for (b)
 * (default 1000/s for 10 s).
 *
 * Checks (a failed one ends the run with exit status 1): every PUBACK arrived; totals.messages
 * equals the distinct messages appended and published, no duplicates, no device with a gap, the
 * expected number of devices; the ingestor ends `ingesting`; the region exits 0 on SIGTERM.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { MqttClient } from 'mqtt';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { type RunningAnalytics, startAnalytics } from '../../src/processes/index.js';
import { freePort } from '../../test/harness/process.js';
import type { OnboardedDevice } from '../commands/load.js';
import { Client, HOST, printed, startBenchRegion } from '../commands/region.js';
import { Cleanup, check, machine, percentile } from '../registry/common.js';
import { int, ms, type Row, table } from '../replication/report.js';
import { appendBacklog, connectDevice, paced } from './load.js';

const REGION = 'us-east';
const TEMPLATE = 'fleet-device';
const BACKLOG_DEVICES = 4;
const LIVE_DEVICES = 4;
const POLL_MS = 25;
const CATCH_UP_TIMEOUT_MS = 600_000;
const SETTLE_TIMEOUT_MS = 60_000;

function positive(name: string, value: string | undefined, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new Error(`--${name} must be in (0, ${max}], got ${value}`);
  return n;
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

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '100000' },
      rate: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '10' },
    },
  });
  let events: number;
  let rate: number;
  let seconds: number;
  try {
    events = Math.floor(positive('events', values.events, 10_000_000));
    rate = positive('rate', values.rate, 20_000);
    seconds = positive('seconds', values.seconds, 120);
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
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    console.log(machine().join('\n'));
    console.log(`load:    ${loadavg()[0]?.toFixed(2)} (1-minute average at the start)`);
    const home = await mkdtemp(join(tmpdir(), 'iotdr-bench-analytics-'));
    cleanup.defer(`remove ${home}`, () => rm(home, { recursive: true, force: true }));

    log(`appending ${int(events)} events to the bus database (not timed)`);
    const backlogDevices = Array.from({ length: BACKLOG_DEVICES }, (_, i) => `backlog-${i}`);
    await appendBacklog(join(home, 'regions', REGION, 'events.db'), REGION, backlogDevices, events);

    log('starting iotdr region');
    const analyticsPort = await freePort();
    const region = await startBenchRegion({
      home,
      name: REGION,
      cleanup,
      config: {
        // The region's analytics checkpoint asks this listener; control is not started (the
        // decision-log mirror retries against a closed port, off the measured path).
        analytics: { address: HOST, port: analyticsPort },
        control: { address: HOST, port: await freePort() },
      },
    });
    console.log(`region:  ${region.command} (SQLite synchronous=full, logging warn)`);
    const config = parseConfig(region.config);

    log('catch-up: startAnalytics on a fresh state');
    const t0 = performance.now();
    const analytics: RunningAnalytics = await startAnalytics({
      config,
      stateDir: home,
      logger: createLogger({ level: 'error', name: 'analytics' }),
      listen: { host: HOST, port: analyticsPort },
      regionUrls: { [REGION]: `http://${HOST}:${region.apiPort}` },
      dashboard: false,
    });
    const stopAnalytics = cleanup.defer('stop analytics', () => analytics.stop());
    const reader = new Client(analyticsPort, region.adminToken, 4);
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
      figure: 'ingest, 0 → caught up',
      setting: `${BACKLOG_DEVICES} devices, backlog on the bus`,
      work: `${int(events)} events`,
      seconds: catchUpS,
      result: `${int(events / catchUpS)} events/s`,
      target: '—',
      met: undefined,
    });

    log(`steady state: ${LIVE_DEVICES} devices over MQTT, ${rate}/s for ${seconds} s`);
    const cnc = new Client(region.cncPort, region.adminToken, 2);
    cleanup.defer('close cnc client', () => cnc.close());
    const api = new Client(region.apiPort, region.adminToken, 1);
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
      `analytics counted ${last?.live} live messages, ${published.count} were published and acknowledged`,
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
    rows.push({
      figure: 'steady lag, /v1/ingest lagMs',
      setting: `${LIVE_DEVICES} devices, ${int(rate)} msg/s QoS1`,
      work: `${lags.length} reads`,
      seconds,
      result: latency(lags),
      target: '—',
      met: undefined,
    });
    rows.push({
      figure: 'steady lag, publish → /v1/totals',
      setting: `${LIVE_DEVICES} devices, ${int(rate)} msg/s QoS1`,
      work: `${int(published.count)} msgs`,
      seconds,
      result: latency(visible),
      target: '—',
      met: undefined,
    });

    const final = await totals();
    const expected = events + published.count;
    check(
      final.messages === expected,
      `totals.messages ${final.messages}, ${expected} distinct messages sent`,
    );
    check(final.duplicates === 0, `${final.duplicates} duplicates`);
    check(final.devicesWithGaps === 0 && final.missing === 0, `${final.devicesWithGaps} devices with gaps`);
    check(
      final.devices === BACKLOG_DEVICES + LIVE_DEVICES,
      `${final.devices} devices, ${BACKLOG_DEVICES + LIVE_DEVICES} sent`,
    );
    const status = (await reader.json<Ingest>('GET', '/v1/ingest', 200)).items?.[0];
    check(status?.state?.type === 'ingesting', `ingestion ended ${JSON.stringify(status?.state)}`);
    notes.push(
      `during the catch-up /v1/ingest showed lagMs up to ${int(catchUpLag.ms)} ms and lagEvents up to ${int(catchUpLag.events)}`,
      `totals after the run: ${int(final.messages)} messages, ${final.duplicates} duplicates, ` +
        `${final.devices} devices, ${final.devicesWithGaps} with gaps`,
      `/v1/ingest lagEvents at most ${maxLagEvents}: lagMs is the age of the oldest event a read left ` +
        'unread, 0 whenever a read reached the end of the bus',
      `visibility is read every ${POLL_MS} ms, so it includes up to one read interval plus the read itself`,
    );

    await Promise.all(clients.map((c) => c.client.endAsync(true)));
    clients.length = 0;
    await stopAnalytics();
    const exit = await region.stop();
    check(exit === 0, `the region exited with ${exit}:\n${region.output()}`);
    notes.push(...printed(region.output()).map((line) => `region printed: ${line}`));

    console.log('');
    console.log(table(rows));
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

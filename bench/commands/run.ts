/**
 * Command and control on one real region (`npm run bench:commands`): `iotdr region` as a child
 * process with its cnc listener on a free port of 127.0.0.1, a template policy, then
 *
 * (a) single onboarding, `POST /v1/devices` with the key made by iotdr, 8 in flight;
 * (b) bulk onboarding jobs of 2,000 devices from a CSV body: keys made by iotdr, then CSRs made by
 *     the bench beforehand (the region only signs) — wall time from the POST to `succeeded`;
 * (c) commands to a device connected over mTLS (mqtt.js, a certificate from (a)) that answers each
 *     at once, 16 in flight: POST → `succeeded` seen by GET /v1/commands/{id}.
 *
 * Options: `--seconds N` timed parts of (a) and (c) (default 5; warm-ups a fifth, at least 1 s),
 * `--devices N` devices per bulk job (default 2000).
 *
 * Checks (a failed one ends the run with exit status 1 and no figure): every answer 201/202, every
 * job `succeeded` with all its devices, every command `succeeded` and delivered to the device
 * exactly once; after the region stopped (exit 0), its registry holds exactly the things and
 * certificates onboarded and the commands issued.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { CNC_KIND } from '../../src/commands/index.js';
import { KIND, SqliteStore } from '../../src/registry/index.js';
import { Cleanup, check, drive, type Figure, machine, percentile, table } from '../registry/common.js';
import { AnsweringDevice, bulkJob, issueCommand, makeCsrs, onboardSingles } from './load.js';
import { Client, printed, startBenchRegion } from './region.js';

const REGION = 'us-east';
const TEMPLATE = 'fleet-device';
const ONBOARD_IN_FLIGHT = 8;
const COMMANDS_IN_FLIGHT = 16;
/** Bounds every loop whatever the machine: far above what one second of either figure reaches. */
const MAX_OPS_PER_SECOND = 20_000;

function positive(name: string, value: string | undefined, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new Error(`--${name} must be in (0, ${max}], got ${value}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { seconds: { type: 'string', default: '5' }, devices: { type: 'string', default: '2000' } },
  });
  let seconds: number;
  let devices: number;
  try {
    seconds = positive('seconds', values.seconds, 60);
    // The job limit of docs/commands.md.
    devices = Math.floor(positive('devices', values.devices, 10_000));
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const durationMs = seconds * 1000;
  const warmupMs = Math.max(1000, durationMs / 5);
  const maxOps = Math.ceil(MAX_OPS_PER_SECOND * Math.max(seconds, warmupMs / 1000));
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
  const figures: Figure[] = [];
  const notes: string[] = [];
  try {
    console.log(machine().join('\n'));
    console.log(`load:    ${loadavg()[0]?.toFixed(2)} (1-minute average at the start)`);
    const home = await mkdtemp(join(tmpdir(), 'iotdr-bench-cnc-'));
    cleanup.defer(`remove ${home}`, () => rm(home, { recursive: true, force: true }));

    log('starting iotdr region');
    const region = await startBenchRegion({ home, name: REGION, cleanup });
    console.log(`region:  ${region.command} (SQLite synchronous=full, logging warn)`);
    const api = new Client(region.apiPort, region.adminToken, 2, region.apiCa);
    cleanup.defer('close API client', () => api.close());
    const cnc = new Client(region.cncPort, region.adminToken, COMMANDS_IN_FLIGHT + 1);
    cleanup.defer('close cnc client', () => cnc.close());
    await api.json('PUT', `/v1/policies/${TEMPLATE}`, 201, { policyDocument: DEVICE_POLICY_TEMPLATE() });

    log(`(a) single onboarding, ${ONBOARD_IN_FLIGHT} in flight, ${seconds} s`);
    const singles = await onboardSingles(cnc, TEMPLATE, ONBOARD_IN_FLIGHT, warmupMs, durationMs, maxOps);
    const t = singles.timed;
    figures.push({
      figure: 'onboarding (POST /v1/devices)',
      setting: 'key made by iotdr',
      concurrency: ONBOARD_IN_FLIGHT,
      ops: t.ops,
      seconds: t.seconds,
      perSecond: t.ops / t.seconds,
      p50Ms: percentile(t.latenciesMs, 0.5),
      p99Ms: percentile(t.latenciesMs, 0.99),
    });

    log(`(b) bulk job of ${devices} devices, keys made by iotdr`);
    const names = (prefix: string) =>
      Array.from({ length: devices }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
    const keysJob = await bulkJob(cnc, TEMPLATE, names('bulk-key'));
    figures.push(jobFigure('key made by iotdr', devices, keysJob.seconds));
    log(`making ${devices} CSRs (not timed)`);
    const csrNames = names('bulk-csr');
    const csrs = await makeCsrs(csrNames);
    log(`(b) bulk job of ${devices} devices with CSRs`);
    const csrJob = await bulkJob(cnc, TEMPLATE, csrNames, csrs);
    figures.push(jobFigure('CSR made by the bench', devices, csrJob.seconds));

    log(`(c) commands, ${COMMANDS_IN_FLIGHT} in flight, ${seconds} s`);
    const device = await AnsweringDevice.connect(region.mqttPort, region.caPem, singles.first);
    const closeDevice = cleanup.defer('disconnect the device', () => device.close());
    const warmCommands = await drive(COMMANDS_IN_FLIGHT, warmupMs, maxOps, issueCommand(cnc, device));
    const commands = await drive(COMMANDS_IN_FLIGHT, durationMs, maxOps, issueCommand(cnc, device));
    const issued = warmCommands.ops + commands.ops;
    const repeated = [...device.received.values()].filter((n) => n !== 1).length;
    check(
      device.received.size === issued && repeated === 0,
      `the device got ${device.received.size} distinct commands (${repeated} more than once), ${issued} were issued`,
    );
    figures.push({
      figure: 'commands (POST → succeeded)',
      setting: 'device answers at once',
      concurrency: COMMANDS_IN_FLIGHT,
      ops: commands.ops,
      seconds: commands.seconds,
      perSecond: commands.ops / commands.seconds,
      p50Ms: percentile(commands.latenciesMs, 0.5),
      p99Ms: percentile(commands.latenciesMs, 0.99),
    });
    await closeDevice();

    log('stopping the region and counting its registry');
    cnc.close();
    api.close();
    const exit = await region.stop();
    check(exit === 0, `the region exited with ${exit}:\n${region.output()}`);
    const onboarded = singles.warm.ops + singles.timed.ops + 2 * devices;
    const store = new SqliteStore({ path: region.dbPath });
    try {
      await store.init();
      const things = await store.count(KIND.thing);
      const certificates = await store.count(KIND.certificate);
      const stored = await store.count(CNC_KIND.command);
      check(things === onboarded, `${things} things in the registry, ${onboarded} devices onboarded`);
      check(
        certificates === onboarded,
        `${certificates} certificates in the registry, ${onboarded} devices onboarded`,
      );
      check(stored === issued, `${stored} commands in the registry, ${issued} issued`);
      notes.push(
        `registry after the run: ${things} things, ${certificates} certificates, ${stored} commands (all succeeded)`,
        `bulk jobs: ${keysJob.polls} and ${csrJob.polls} GET polls (every 50 ms)`,
      );
    } finally {
      await store.close();
    }
    notes.push(...printed(region.output()).map((line) => `region printed: ${line}`));

    console.log('');
    console.log(table(figures));
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

function jobFigure(setting: string, devices: number, seconds: number): Figure {
  return {
    figure: `bulk job of ${devices.toLocaleString('en-US')} (CSV)`,
    setting,
    concurrency: 8,
    ops: devices,
    seconds,
    perSecond: devices / seconds,
  };
}

process.exitCode = await main();

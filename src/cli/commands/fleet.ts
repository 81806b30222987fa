import { IotdrError, waitUntil } from '../../common/index.js';
import { percentile } from '../../drill/index.js';
import { type DeviceRecord, type Fleet, launchFleet, summaryLine } from '../../fleet/index.js';
import { progressBar, table } from '../api.js';
import { fleetOptions, loadFor, parseCommand, usageError } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr fleet [--devices N] [--rate MSGS_PER_S] [--auth mtls|token] [--name PREFIX]
                   [--duration SECONDS] [--config FILE]

Runs a simulated fleet against the running platform (iotdr up): onboards N devices (default 20)
in the active region with the device policy template — in one bulk job through command and
control (keys and certificates), or with --auth token as things with a broker token each through
the management API — then runs them in worker threads on the device SDK. Each device publishes telemetry (devices/<thing>/telemetry, with a
sequence number) at its share of --rate (default one message per device per second), answers
commands, and follows failovers. A line of status every 5 s; Ctrl-C (or --duration) pauses
publishing, gives the queues up to 10 s to drain, stops the fleet and prints a table per device
group.

Devices are named <PREFIX>-00001… (default prefix fleet); their credentials are kept in
<state>/fleet/<PREFIX>.credentials.json (mode 0600), so the same fleet starts again without
onboarding, and their queues (what they accepted and no broker acknowledged yet) in
<state>/fleet/queues/<PREFIX>/.`;

/** How often the status line is printed, ms. */
const STATUS_EVERY_MS = 5000;
/** How long a stopping fleet waits for its queues to drain, ms. */
const DRAIN_MS = 10_000;

const SPEC = {
  name: 'fleet',
  usage: USAGE,
  options: {
    devices: { type: 'string' },
    rate: { type: 'string' },
    auth: { type: 'string' },
    name: { type: 'string' },
    duration: { type: 'string' },
  },
} as const;

export const fleetCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const bad = (message: string) => usageError(SPEC, io, message);
  const shared = fleetOptions(values, 20);
  if (typeof shared === 'string') return bad(shared);
  const { devices, rate, auth } = shared;
  const prefix = values.name ?? 'fleet';
  if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(prefix))
    return bad('--name: lower-case letters, digits and hyphens, up to 41, starting with a letter or digit');
  const duration = values.duration === undefined ? undefined : Number(values.duration);
  if (duration !== undefined && (!Number.isFinite(duration) || duration <= 0))
    return bad('--duration: seconds, > 0');

  const loaded = await loadFor(io, values);
  if (auth === 'token' && !loaded.config.broker.tokenAuth)
    return bad('--auth token needs broker.tokenAuth: true in the configuration');

  let fleet: Fleet;
  try {
    let shownAt = 0;
    const launched = await launchFleet({
      config: loaded.config,
      stateDir: loaded.stateDir,
      count: devices,
      prefix,
      auth,
      ...(rate === undefined ? {} : { ratePerSecond: rate }),
      onProgress: (done, total, phase) => {
        if (Date.now() - shownAt < 1000 && done < total) return;
        shownAt = Date.now();
        io.out(`  ${phase.padEnd(10)} ${progressBar(done, total)} ${done}/${total}`);
      },
      onError: (message) => io.err(`iotdr fleet: ${message}`),
    });
    fleet = launched.fleet;
    io.out(
      `iotdr fleet: ${devices} devices (${auth}) onboarded in ${launched.region.name}, ${rate ?? devices} msg/s; ${duration === undefined ? 'Ctrl-C stops' : `running ${duration} s`}`,
    );
  } catch (error) {
    if (!(error instanceof IotdrError)) throw error;
    io.err(`iotdr fleet: ${error.message}`);
    io.err('is the platform running (iotdr up) with this configuration and state directory?');
    return 1;
  }

  const status = setInterval(() => io.out(`  ${clock()}  ${summaryLine(fleet.summary())}`), STATUS_EVERY_MS);
  const stop = new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (duration !== undefined) setTimeout(done, duration * 1000).unref();
  });
  await stop;
  clearInterval(status);
  // Publishing pauses and the queues get a moment to drain, so the table counts what was sent.
  io.out(
    `iotdr fleet: stopping: publishing paused, up to ${DRAIN_MS / 1000} s for the queues to drain (what no broker acknowledged stays queued on disk)`,
  );
  fleet.pause();
  await waitUntil(() => fleet.summary().queued === 0, {
    timeoutMs: DRAIN_MS,
    what: 'the queues to drain',
  }).catch(() => undefined);
  // Where each device was; the counts are the devices' last, reported as they stop.
  const regions = new Map(fleet.records().map((r) => [r.thingName, r.region]));
  await fleet.stop();
  const records = fleet.records().map((r) => ({ ...r, region: regions.get(r.thingName) ?? null }));
  for (const line of fleetTable(records)) io.out(line);
  return 0;
};

/** One row per region the devices are on (and `-` for those disconnected), with a total. */
export function fleetTable(records: DeviceRecord[]): string[] {
  const groups = new Map<string, DeviceRecord[]>();
  for (const r of records) {
    const key = r.region ?? '-';
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const row = (name: string, rs: DeviceRecord[]) => {
    const reconnects = rs
      .filter((r) => r.disconnectedAt !== null && r.reconnectedAt !== null)
      .map((r) => (r.reconnectedAt as number) - (r.disconnectedAt as number))
      .sort((a, b) => a - b);
    const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
    return [
      name,
      String(rs.length),
      String(rs.reduce((n, r) => n + r.accepted, 0)),
      String(rs.reduce((n, r) => n + r.acked, 0)),
      String(rs.reduce((n, r) => n + r.queueDepth, 0)),
      String(rs.reduce((n, r) => n + r.moves, 0)),
      ms(percentile(reconnects, 50)),
      ms(percentile(reconnects, 99)),
    ];
  };
  return table([
    ['REGION', 'DEVICES', 'ACCEPTED', 'ACKED', 'QUEUED', 'MOVES', 'RECONNECT P50', 'RECONNECT P99'],
    ...[...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, rs]) => row(name, rs)),
    row('total', records),
  ]);
}

function clock(): string {
  return new Date().toISOString().slice(11, 19);
}

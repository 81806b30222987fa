/**
 * Where a fleet's reconnect time goes (`npm run bench:reconnect`): the platform on the defaults (as
 * `iotdr drill` runs it), a fleet of simulated devices on the device SDK in the primary, and then,
 * round after round, every device disconnected at once and timed until each is back — beside the
 * ceiling (minimal clients: TLS, CONNECT, CONNACK) measured as the drill does, on the secondary
 * (the same broker, idle, on the same machine) in the same run.
 * Each round counts, per cause, what the time went to: the devices' failed connects by why they
 * failed and the time their backoff waited, the broker's refusals by reason and the TCP connections
 * it accepted per device back, its handshake limit, and the connections waiting in its line and in
 * the kernel's accept queue in front of it.
 *
 * Before each round it also measures what one simulated device costs the bench process: CPU per
 * message over the quiet seconds before the round (every device connected, publishing, re-checking
 * DNS), CPU per device for the reconnect (the round's CPU less that steady cost over the round),
 * and resident memory per device (the process's growth from before the fleet to all devices up).
 *
 * Options: `--devices N` (default 1000), `--auth mtls|token` (default mtls), `--rounds R` (default 3),
 * `--config FILE` (the platform's configuration, as `iotdr drill --config`; default the defaults).
 * Prints two Markdown tables; progress goes to stderr.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKER_ROUTES } from '../../src/broker/index.js';
import type { RegionConfig } from '../../src/config/index.js';
import { apiUrlOf } from '../../src/config/index.js';
import { drillConfig } from '../../src/drill/index.js';
import {
  type Ceiling,
  type FleetSummary,
  launchFleet,
  loopbackSource,
  measureCeiling,
  platformCredentials,
} from '../../src/fleet/index.js';
import { ApiClient, sendRequest } from '../../src/http/index.js';
import { startPlatform } from '../../src/processes/index.js';
import { acceptQueue, gauges } from '../../test/harness/storm.js';
import { machine } from '../registry/common.js';

const SAMPLE_MS = 250;
/** The quiet time before each round, when the steady cost of the fleet is measured. */
const QUIET_MS = 5000;

const USAGE = `npm run bench:reconnect -- [--devices N] [--auth mtls|token] [--rounds R] [--config FILE]

  --devices N   simulated SDK devices, onboarded in the primary (default 1000)
  --auth A      mtls or token (default mtls)
  --rounds R    disconnect-all rounds, each timed until every device is back (default 3)
  --config FILE the platform's configuration (default: the defaults, as iotdr drill runs them);
                other addresses keep a drill or test running beside the bench off its platform
`;
const ROUND_TIMEOUT_MS = 300_000;

interface Round {
  reconnectMs: number;
  back: number;
  retries: FleetSummary['retries'];
  backoffMs: number;
  refusals: Record<string, number>;
  accepted: number;
  limitMin: number;
  limitMedian: number;
  waitingMax: number;
  kernelMax: number;
  /** CPU seconds each process used during the round: the bench's own (the simulated fleet) and the platform's. */
  cpu: Record<string, number>;
  /** The fleet's CPU seconds and the messages acknowledged over the quiet seconds before the round. */
  quiet: { cpu: number; acked: number; ms: number };
}

/** CPU seconds (user + system) a process has used, from /proc (Linux); 0 when it is gone. */
async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; in clock ticks (100/s).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Counters of a Prometheus text page: `name{labels} value` rows of one name, by one label's value. */
async function counters(
  metricsUrl: string,
  caPem: string,
  name: string,
  label: string,
): Promise<Record<string, number>> {
  const { text } = await sendRequest(metricsUrl, {
    method: 'GET',
    headers: {},
    trust: caPem,
    signal: AbortSignal.timeout(5000),
  });
  const out: Record<string, number> = {};
  const pattern = new RegExp(`^${name}\\{[^}]*${label}="([^"]+)"[^}]*\\} (\\S+)$`);
  for (const line of text.split('\n')) {
    const m = pattern.exec(line);
    if (m?.[1] !== undefined) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return out;
}

const minus = (a: Record<string, number>, b: Record<string, number>) =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '1000' },
      auth: { type: 'string', default: 'mtls' },
      rounds: { type: 'string', default: '3' },
      config: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const devices = Number(values.devices);
  const auth = values.auth === 'token' ? 'token' : 'mtls';
  const rounds = Number(values.rounds);
  /** The drill's default: one message per device and second, at most 1,000 over the fleet. */
  const messageRate = Math.min(devices, 1000);
  const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-bench-reconnect-'));
  const { config, configFile } = await drillConfig({
    auth,
    stateDir,
    ...(values.config === undefined ? {} : { sourceFile: values.config }),
  });
  const [primary, secondary] = [...config.regions].sort((a, b) => a.priority - b.priority) as [
    RegionConfig,
    RegionConfig,
  ];
  const metricsUrl = `${apiUrlOf(config, primary)}/metrics`;
  const port = auth === 'mtls' ? primary.mqtt.port : primary.mqtt.tokenPort;
  const load = loadavg()[0]?.toFixed(2);
  log(`starting the platform in ${stateDir} (load ${load})`);
  const platform = await startPlatform({
    config,
    stateDir,
    ...(configFile ? { configFile } : {}),
    env: process.env,
    cwd: process.cwd(),
    faults: false,
    onReady: (p) => log(`  ${p.what} ready`),
  });
  const results: Round[] = [];
  let ceiling: Ceiling | undefined;
  let rssPerDevice = Number.NaN;
  try {
    const { token, caPem } = await platformCredentials(stateDir);
    const rssBefore = process.memoryUsage.rss();
    log(`onboarding ${devices} devices (${auth}) in ${primary.name}`);
    const { fleet, devices: onboarded } = await launchFleet({
      config,
      stateDir,
      count: devices,
      prefix: 'bench',
      auth,
      region: primary,
      ratePerSecond: messageRate,
      onProgress: (done, total, phase) => {
        if (done === total || done % 250 === 0) log(`  ${phase} ${done}/${total}`);
      },
    });
    try {
      const allBack = async (since: number, timeoutMs: number) => {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
          const records = fleet.records();
          if (
            records.length === devices &&
            records.every(
              (r) => r.region === primary.name && (r.reconnectedAt ?? r.connectedAt ?? 0) >= since,
            )
          )
            return true;
          await new Promise((r) => setTimeout(r, SAMPLE_MS));
        }
        return false;
      };
      if (!(await allBack(0, Math.max(120_000, devices * 20)))) throw new Error('the fleet never came up');
      rssPerDevice = (process.memoryUsage.rss() - rssBefore) / devices;
      log(`${devices} devices up; measuring ${secondary.name}'s ceiling (minimal clients, 256 at once, 6 s)`);
      ceiling = await measureCeiling({
        host: secondary.address,
        port: auth === 'mtls' ? secondary.mqtt.port : secondary.mqtt.tokenPort,
        servername: `${config.names.mqtt}.${config.zone}`,
        caPem,
        identities: onboarded.slice(0, 256).map((d) => ({ clientId: d.thingName, auth: d.auth })),
        inFlight: 256,
        durationMs: 6000,
        warmupMs: 1000,
        connectTimeoutMs: 10_000,
        localAddresses: Array.from({ length: 256 }, (_, i) => loopbackSource(i, 200)),
      });
      log(`  ceiling ${ceiling.connectsPerSecond} connects/s`);

      for (let round = 1; round <= rounds; round++) {
        // The quiet seconds: the fleet's steady cost, per message acknowledged.
        await new Promise((r) => setTimeout(r, 1000));
        const quietFrom = {
          cpu: await cpuSeconds(process.pid),
          acked: fleet.summary().acked,
          at: Date.now(),
        };
        await new Promise((r) => setTimeout(r, QUIET_MS - 1000));
        const quiet = {
          cpu: (await cpuSeconds(process.pid)) - quietFrom.cpu,
          acked: fleet.summary().acked - quietFrom.acked,
          ms: Date.now() - quietFrom.at,
        };
        const before = {
          summary: fleet.summary(),
          refusals: await counters(metricsUrl, caPem, 'iotdr_broker_refusals_total', 'reason'),
          accepted: await counters(metricsUrl, caPem, 'iotdr_broker_connections_accepted_total', 'listener'),
        };
        const pids: Record<string, number | undefined> = { 'fleet (bench process)': process.pid };
        for (const [name, p] of platform.processes) pids[name] = p.child.pid;
        const cpuBefore = Object.fromEntries(
          await Promise.all(
            Object.entries(pids).map(async ([k, pid]) => [k, await cpuSeconds(pid)] as const),
          ),
        );
        const limits: number[] = [];
        let waitingMax = 0;
        let kernelMax = 0;
        const start = Date.now();
        await new ApiClient(primary.name, apiUrlOf(config, primary), token, caPem).request(
          BROKER_ROUTES.disconnect,
          {
            body: { all: true },
          },
        );
        let done = false;
        const back = allBack(start, ROUND_TIMEOUT_MS).then((ok) => {
          done = true;
          return ok;
        });
        let lastLog = 0;
        while (!done) {
          const g = await gauges(metricsUrl, [
            'iotdr_broker_handshakes_limit',
            'iotdr_broker_handshakes_waiting',
          ]);
          if (g.iotdr_broker_handshakes_limit !== undefined) limits.push(g.iotdr_broker_handshakes_limit);
          waitingMax = Math.max(waitingMax, g.iotdr_broker_handshakes_waiting ?? 0);
          kernelMax = Math.max(kernelMax, (await acceptQueue(primary.address, port)) ?? 0);
          if (Date.now() - lastLog > 3000) {
            lastLog = Date.now();
            const s = fleet.summary();
            log(`  round ${round}: ${s.connected}/${s.devices} back after ${Date.now() - start} ms`);
          }
          await new Promise((r) => setTimeout(r, SAMPLE_MS));
        }
        const ok = await back;
        const cpu = Object.fromEntries(
          await Promise.all(
            Object.entries(pids).map(
              async ([k, pid]) => [k, (await cpuSeconds(pid)) - (cpuBefore[k] ?? 0)] as const,
            ),
          ),
        );
        const reconnectMs = Math.max(...fleet.records().map((r) => (r.reconnectedAt ?? start) - start));
        const after = fleet.summary();
        const sorted = [...limits].sort((a, b) => a - b);
        results.push({
          reconnectMs: ok ? reconnectMs : Number.NaN,
          back: after.connected,
          retries: Object.fromEntries(
            Object.entries(after.retries).map(([k, v]) => [k, v - (before.summary.retries[k as never] ?? 0)]),
          ) as FleetSummary['retries'],
          backoffMs: after.backoffMs - before.summary.backoffMs,
          refusals: minus(
            await counters(metricsUrl, caPem, 'iotdr_broker_refusals_total', 'reason'),
            before.refusals,
          ),
          accepted: Object.values(
            minus(
              await counters(metricsUrl, caPem, 'iotdr_broker_connections_accepted_total', 'listener'),
              before.accepted,
            ),
          ).reduce((a, b) => a + b, 0),
          limitMin: sorted[0] ?? Number.NaN,
          limitMedian: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
          waitingMax,
          kernelMax,
          cpu,
          quiet,
        });
        log(`  round ${round}: ${ok ? `all back in ${reconnectMs} ms` : 'NOT all back'}`);
      }
    } finally {
      await fleet.stop();
    }
  } finally {
    await platform.stop();
    await rm(stateDir, { recursive: true, force: true });
  }

  const cores = availableParallelism();
  const n = (v: number) => (Number.isNaN(v) ? '—' : Math.round(v).toLocaleString('en-US'));
  console.log(machine().join('\n'));
  console.log(`load at the start: ${load}`);
  console.log('');
  const cps = ceiling?.connectsPerSecond ?? 0;
  console.log(
    `Ceiling of ${secondary.name} (${auth}, minimal clients, 256 at once, the fleet connected to ${primary.name}): ${n(cps)} connects/s, so ${n(devices)} devices in ${n((devices / Math.max(1, cps)) * 1000)} ms.`,
  );
  console.log('');
  const head = [
    'round',
    'all back (ms)',
    'devices/s',
    '÷ ceiling',
    'failed connects: timeout / closed / unreachable / refused / dns / other',
    'backoff waited (s, all devices)',
    'broker refusals by reason',
    'TCP accepted per device back',
    'handshake limit min / median',
    'waiting max: broker / kernel',
    'CPU s during the round (share of the machine)',
  ];
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const [i, r] of results.entries()) {
    const rate = (devices * 1000) / r.reconnectMs;
    const refusals =
      Object.entries(r.refusals)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${n(v)}`)
        .join(', ') || 'none';
    console.log(
      `| ${[
        String(i + 1),
        n(r.reconnectMs),
        n(rate),
        cps > 0 ? `${(rate / cps).toFixed(2)}` : '—',
        `${n(r.retries.timeout)} / ${n(r.retries.closed)} / ${n(r.retries.unreachable)} / ${n(r.retries.refused)} / ${n(r.retries.dns)} / ${n(r.retries.other)}`,
        n(r.backoffMs / 1000),
        refusals,
        (r.accepted / Math.max(1, r.back)).toFixed(2),
        `${n(r.limitMin)} / ${n(r.limitMedian)}`,
        `${n(r.waitingMax)} / ${n(r.kernelMax)}`,
        Object.entries(r.cpu)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v.toFixed(1)} (${Math.round((v * 100000) / (r.reconnectMs * cores))}%)`)
          .join(', '),
      ].join(' | ')} |`,
    );
  }
  console.log('');
  console.log(
    `What one simulated device costs the bench process (${n(devices)} ${auth} devices, ${n(messageRate)} messages a second over the fleet):`,
  );
  console.log('');
  const costHead = [
    'round',
    'CPU per message, steady (µs)',
    'CPU per device per reconnect (ms)',
    'resident memory per device (KiB)',
  ];
  console.log(`| ${costHead.join(' | ')} |`);
  console.log(`|${costHead.map(() => '---').join('|')}|`);
  for (const [i, r] of results.entries()) {
    const fleetCpu = r.cpu['fleet (bench process)'] ?? Number.NaN;
    // The round's CPU less what the fleet would have spent publishing over as long a time.
    const steadyPerMs = r.quiet.cpu / r.quiet.ms;
    const reconnect = (fleetCpu - steadyPerMs * r.reconnectMs) / devices;
    console.log(
      `| ${[
        String(i + 1),
        n((r.quiet.cpu * 1e6) / Math.max(1, r.quiet.acked)),
        (reconnect * 1000).toFixed(1),
        i === 0 ? n(rssPerDevice / 1024) : '',
      ].join(' | ')} |`,
    );
  }
  return results.every((r) => !Number.isNaN(r.reconnectMs)) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

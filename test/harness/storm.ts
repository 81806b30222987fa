/**
 * A reconnect storm against a region running as its own process: registered devices made through
 * its management API, the storm itself in a child process (storm-child.ts), and the gauges of the
 * region's /metrics that tell whether its handshake line is full. Shared by the storm test and
 * `npm run bench:health`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { fetch } from './https.js';
import { ROOT } from './process.js';
import type { StormOptions, StormResult } from './storm-child.js';

export type { StormOptions, StormResult };
export type StormDevice = StormOptions['devices'][number];

/** The region's own address in a one-region storm configuration. */
export interface StormRegion {
  name: string;
  address: string;
  apiPort: number;
  mqttPort: number;
}

/**
 * A configuration for regions under a storm: the storm comes from one address, so the per-address
 * limit is lifted (it would refuse the storm before any TLS work).
 */
export function stormConfig(
  regions: StormRegion[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    logging: { level: 'warn' },
    regions: regions.map((r, i) => ({
      name: r.name,
      priority: i + 1,
      address: r.address,
      api: { port: r.apiPort },
      mqtt: { port: r.mqttPort },
      cnc: { port: 0 },
    })),
    analytics: { regionCheck: false },
    broker: { connectionsPerSecondPerAddress: 1_000_000 },
    ...extra,
  };
}

/** Things with a certificate and the device policy, as a console makes them, through the region's API. */
export async function provisionDevices(
  apiUrl: string,
  home: string,
  names: string[],
): Promise<StormDevice[]> {
  const token = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text.length > 0 ? JSON.parse(text) : undefined;
  };
  await call('PUT', '/v1/policies/storm-device', { policyDocument: DEVICE_POLICY_TEMPLATE() });
  const devices: StormDevice[] = [];
  for (const thing of names) {
    await call('PUT', `/v1/things/${thing}`, {});
    const created = await call('POST', '/v1/certificates', {});
    const id = created.certificate.certificateId as string;
    await call('PUT', `/v1/things/${thing}/certificates/${id}`);
    await call('PUT', `/v1/certificates/${id}/policies/storm-device`);
    devices.push({
      clientId: thing,
      certPem: created.certificate.certificatePem,
      keyPem: created.privateKeyPem,
    });
  }
  return devices;
}

export interface RunningStorm {
  /** Resolves with the counts once the storm has run its time, or was stopped. */
  result: Promise<StormResult>;
  /** Ends the storm now; resolves with the counts so far. */
  stop(): Promise<StormResult>;
  kill(): void;
}

/**
 * Starts the storm in `processes` processes of its own (each with `options.inFlight` connections):
 * a client's side of a handshake costs about what the broker's does, so one process can only keep
 * a broker's line full on a machine busy with something else. The options (keys included) go
 * through a 0600 file in `dir`.
 */
export async function startStorm(
  options: StormOptions,
  dir: string,
  processes = 1,
  /** The CPU each process runs on (`taskset`), by index; absent: wherever the system puts it. */
  cpus: readonly number[] = [],
): Promise<RunningStorm> {
  const optionsPath = join(dir, 'storm.json');
  await writeFile(optionsPath, JSON.stringify(options), { mode: 0o600 });
  const children = Array.from({ length: processes }, (_, i) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./storm-child.ts', import.meta.url)), optionsPath],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const cpu = cpus[i];
    if (cpu !== undefined && child.pid !== undefined) pinToCpu(child.pid, cpu);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const result = new Promise<StormResult>((resolve, reject) =>
      child.once('exit', (code) => {
        const last = out.trim().split('\n').at(-1);
        if (code === 0 && last) resolve(JSON.parse(last) as StormResult);
        else reject(new Error(`the storm exited ${code}: ${out}`));
      }),
    );
    return { child, result };
  });
  const result = Promise.all(children.map((c) => c.result)).then((all) =>
    all.reduce((sum, r) => ({
      connacks: sum.connacks + r.connacks,
      refused: sum.refused + r.refused,
      errors: sum.errors + r.errors,
      timeouts: sum.timeouts + r.timeouts,
    })),
  );
  result.catch(() => {});
  return {
    result,
    stop: () => {
      for (const { child } of children) child.kill('SIGTERM');
      return result;
    },
    kill: () => {
      for (const { child } of children) child.kill('SIGKILL');
    },
  };
}

/** Runs a process and all its threads on one CPU from now on (Linux `taskset`, util-linux). */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

/**
 * Gauges of a Prometheus text page (`name value` or `name{labels} value`), by name; a name absent
 * from the page is left out, and an unreachable page gives an empty record.
 */
export async function gauges(metricsUrl: string, names: readonly string[]): Promise<Record<string, number>> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(2000) });
    const lines = (await res.text()).split('\n');
    const found: Record<string, number> = {};
    for (const name of names) {
      const line = lines.find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      if (line !== undefined) found[name] = Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return found;
  } catch {
    return {};
  }
}

/**
 * Connections the kernel holds for a listener and its process has not accepted yet (the listen
 * socket's accept queue, `rx_queue` of its LISTEN row in /proc/net/tcp); null when no such row.
 * Under a storm these wait as surely as those in the broker's own line: a busy event loop accepts
 * them a few per turn.
 */
export async function acceptQueue(host: string, port: number): Promise<number | null> {
  if (!isIPv4(host)) throw new Error(`acceptQueue reads IPv4 listeners only, not ${host}`);
  // /proc/net/tcp writes an IPv4 address as the hex of its bytes in host (little-endian) order.
  const ip = host
    .split('.')
    .map((b) => Number(b).toString(16).toUpperCase().padStart(2, '0'))
    .reverse()
    .join('');
  const local = `${ip}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const rows = (await readFile('/proc/net/tcp', 'utf8')).split('\n');
  for (const row of rows) {
    const [, address, , state, queues] = row.trim().split(/\s+/);
    if (address === local && state === '0A') return Number.parseInt(queues?.split(':')[1] ?? '', 16);
  }
  return null;
}

/**
 * The broker's handshake line, from its gauges and, given its listener, the kernel's accept queue
 * in front of it: `full` when every handshake slot is taken or connections wait for one, in the
 * broker's line or still in the kernel's (the broker admits no more than it does); null when
 * /metrics is unreachable.
 */
export async function handshakeLine(
  metricsUrl: string,
  listener?: { host: string; port: number },
): Promise<{ running: number; waiting: number; limit: number; accepting: number; full: boolean } | null> {
  const [g, accepting] = await Promise.all([
    gauges(metricsUrl, [
      'iotdr_broker_handshakes_running',
      'iotdr_broker_handshakes_waiting',
      'iotdr_broker_handshakes_limit',
    ]),
    listener === undefined ? 0 : acceptQueue(listener.host, listener.port),
  ]);
  const [running, waiting, limit] = [
    g.iotdr_broker_handshakes_running,
    g.iotdr_broker_handshakes_waiting,
    g.iotdr_broker_handshakes_limit,
  ];
  if (running === undefined || waiting === undefined || limit === undefined) return null;
  const queued = accepting ?? 0;
  return { running, waiting, limit, accepting: queued, full: waiting > 0 || queued > 0 || running >= limit };
}

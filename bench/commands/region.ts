/**
 * One real region for the command-and-control and analytics benchmarks: `iotdr region` (the real
 * CLI, from source through tsx) as a child process on 127.0.0.1, with its registry, broker, bus,
 * API and command-and-control listener each on a free port, plus a keep-alive HTTP client for it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, type IncomingMessage, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { freePort, type IotdrProcess, spawnIotdr } from '../../test/harness/process.js';
import { type Cleanup, check } from '../registry/common.js';

export const HOST = '127.0.0.1';
export const ZONE = 'iot.test';
/** How long the region may take to start (tsx compiles the sources on first start). */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 60_000;

export interface BenchRegionOptions {
  home: string;
  name: string;
  cleanup: Cleanup;
  /** Extra top-level configuration (rules, events…), merged over the bench's. */
  config?: Record<string, unknown>;
  /** Extra fields of the region's own entry (its `nats`…), merged over the bench's. */
  region?: Record<string, unknown>;
}

export interface BenchRegion {
  name: string;
  /** The configuration file's content as written (JSON is YAML). */
  config: Record<string, unknown>;
  apiPort: number;
  cncPort: number;
  mqttPort: number;
  /** The embedded CA's certificate, for mTLS clients. */
  caPem: string;
  /**
   * The CA to trust for the API and analytics, served over HTTPS under `links.mode: mutual-tls`
   * (the default); undefined under plain-loopback.
   */
  apiCa: string | undefined;
  adminToken: string;
  /** The registry's SQLite file, to count what the region wrote once it stopped. */
  dbPath: string;
  command: string;
  output(): string;
  /** SIGTERM (SIGKILL after 15 s); resolves with the exit code or signal. */
  stop(): Promise<number | NodeJS.Signals>;
}

function portOf(url: unknown, what: string): number {
  check(typeof url === 'string', `/livez names no ${what} URL`);
  const port = Number(new URL(url).port);
  check(Number.isInteger(port) && port > 0, `/livez gave ${what} URL ${url}`);
  return port;
}

export async function startBenchRegion(options: BenchRegionOptions): Promise<BenchRegion> {
  const { home, name, cleanup } = options;
  const [apiPort, cncPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
  const dbPath = join(home, 'registry.db');
  const config = {
    logging: { level: 'warn' },
    zone: ZONE,
    regions: [
      {
        name,
        priority: 1,
        address: HOST,
        api: { port: apiPort },
        cnc: { port: cncPort },
        mqtt: { port: mqttPort },
        store: { engine: 'sqlite', path: dbPath },
        ...options.region,
      },
    ],
    replication: { enabled: false },
    // Every bench connection comes from 127.0.0.1: the per-address connection limit is not measured.
    broker: { connectionsPerSecondPerAddress: 1_000_000 },
    ...options.config,
  };
  // The region's CA made here first, so the bench can check the API's certificate from its start.
  const caPem = (await loadOrCreateCa(join(home, 'pki'))).certificatePem;
  const links = (config as { links?: { mode?: string } }).links;
  const apiCa = links?.mode === 'plain-loopback' ? undefined : caPem;
  const configFile = join(home, 'iotdr.yaml');
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const args = ['region', '--name', name, '--config', configFile];
  const proc = spawnIotdr(args, { IOTDR_HOME: home });
  const running = () => proc.child.exitCode === null && proc.child.signalCode === null;
  const registered = cleanup.defer(`stop iotdr region ${name} (pid ${proc.child.pid})`, async () => {
    if (!running()) return;
    proc.child.kill('SIGTERM');
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      await proc.exited;
    } finally {
      clearTimeout(timer);
    }
  });
  const live = await livez(new Client(apiPort, '', 1, apiCa), proc);
  check(portOf(live.cnc, 'cnc') === cncPort, `the cnc listener is not on port ${cncPort}: ${live.cnc}`);
  return {
    name,
    config,
    apiPort,
    cncPort,
    mqttPort: portOf(live.mqtt, 'mqtt'),
    caPem,
    apiCa,
    adminToken: (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim(),
    dbPath,
    command: `iotdr ${args.join(' ')}`,
    output: proc.output,
    stop: async () => {
      await registered();
      return proc.exited;
    },
  };
}

async function livez(client: Client, proc: IotdrProcess): Promise<Record<string, unknown>> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null)
        throw new Error(`iotdr region exited before it served:\n${proc.output()}`);
      try {
        const res = await client.call('GET', '/livez', undefined, {}, 1000);
        if (res.status === 200) return JSON.parse(res.body) as Record<string, unknown>;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    client.close();
  }
  throw new Error(`iotdr region did not serve within ${START_TIMEOUT_MS} ms:\n${proc.output()}`);
}

/** Lines the region printed (level warn and above, Node's warnings), once each, shortened. */
export function printed(output: string): string[] {
  return [...new Set(output.split('\n'))]
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('(Use `node --trace-warnings'))
    .map((line) => (line.length > 200 ? `${line.slice(0, 200)}…` : line));
}

export interface Answer {
  status: number;
  body: string;
}

/** A keep-alive HTTP client for one port with a bearer token; HTTPS trusting `ca` when given. */
export class Client {
  readonly #agent: Agent | HttpsAgent;

  constructor(
    readonly port: number,
    readonly token: string,
    maxSockets: number,
    ca?: string,
  ) {
    this.#agent =
      ca === undefined
        ? new Agent({ keepAlive: true, maxSockets })
        : new HttpsAgent({ keepAlive: true, maxSockets, ca });
  }

  call(
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = { 'content-type': 'application/json' },
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const all: Record<string, string | number> = { authorization: `Bearer ${this.token}` };
      if (body !== undefined) Object.assign(all, headers, { 'content-length': Buffer.byteLength(body) });
      const agent = this.#agent;
      const options = { host: HOST, port: this.port, method, path, headers: all };
      const respond = (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      };
      const req =
        agent instanceof HttpsAgent
          ? httpsRequest({ ...options, agent }, respond)
          : request({ ...options, agent }, respond);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** `call` that must answer `status`; returns the parsed JSON body, typed as the caller expects. */
  async json<T = unknown>(method: string, path: string, status: number, body?: unknown): Promise<T> {
    const r = await this.call(method, path, body === undefined ? undefined : JSON.stringify(body));
    check(
      r.status === status,
      `${method} ${path} answered ${r.status}, not ${status}: ${r.body.slice(0, 300)}`,
    );
    return (r.body === '' ? undefined : JSON.parse(r.body)) as T;
  }

  close(): void {
    this.#agent.destroy();
  }
}

/**
 * Two real regions, us-east and us-west, as `iotdr region` child processes (run from source
 * through tsx) sharing one state directory (one CA, one admin token), each with its own store and
 * API on 127.0.0.1 and a free port: HTTPS with mutual TLS between them (site certificates), or plain
 * HTTP with the replicator token (`links: plain-loopback`), to measure what TLS costs. Each is started and stopped on its own,
 * so a benchmark can fill us-east first or let us-west start empty.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { freePort, type IotdrProcess, spawnIotdr } from '../../test/harness/process.js';
import { type Cleanup, check } from '../registry/common.js';

export const HOST = '127.0.0.1';
export const EAST = 'us-east';
export const WEST = 'us-west';
export type RegionName = typeof EAST | typeof WEST;

/** How long a region may take to start (tsx compiles the sources on first start). */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 30_000;

export type StoreSpec =
  | { engine: 'sqlite'; path: string }
  | { engine: 'postgres'; url: string; schema: string };

export interface Answer {
  status: number;
  body: string;
}

/** The status of one link as GET /v1/replication/status shows it. */
export interface LinkStatus {
  peer: string;
  state: { type: string };
  cursor: number;
  peerLastSeq: number | null;
  lagChanges: number | null;
  lagMs: number | null;
  lastError: { message: string; at: number } | null;
  applied: number;
  stale: number;
  deadLetters: number;
}

export interface PairOptions {
  stateDir: string;
  stores: Record<RegionName, StoreSpec>;
  cleanup: Cleanup;
  /** Extra `replication:` settings; the rest keep their defaults. */
  replication?: Record<string, unknown>;
  /** Sockets per region for the bench's own requests (default 64). */
  maxSockets?: number;
  /** How the regions talk: mutual TLS with site certificates (default) or plain loopback HTTP. */
  links?: 'mutual-tls' | 'plain-loopback';
}

class Region {
  readonly name: RegionName;
  readonly port: number;
  proc: IotdrProcess | undefined;
  /** What earlier runs of this region printed. */
  readonly earlier: string[] = [];
  #stop: (() => Promise<void>) | undefined;

  constructor(name: RegionName, port: number) {
    this.name = name;
    this.port = port;
  }

  get running(): boolean {
    return (
      this.proc !== undefined && this.proc.child.exitCode === null && this.proc.child.signalCode === null
    );
  }

  setStop(stop: () => Promise<void>): void {
    this.#stop = stop;
  }

  async stop(): Promise<{ exit: number | NodeJS.Signals; output: string } | undefined> {
    const proc = this.proc;
    if (!proc) return undefined;
    await this.#stop?.();
    this.#stop = undefined;
    this.proc = undefined;
    const exit = await proc.exited;
    this.earlier.push(proc.output());
    return { exit, output: proc.output() };
  }
}

async function stopProcess(proc: IotdrProcess): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

export class RegionPair {
  readonly stateDir: string;
  readonly configFile: string;
  readonly regions: Record<RegionName, Region>;
  readonly #cleanup: Cleanup;
  readonly #agent: HttpAgent | HttpsAgent;
  #token = '';

  private constructor(options: PairOptions, ports: number[], configFile: string, caPem: string) {
    this.stateDir = options.stateDir;
    this.configFile = configFile;
    this.#cleanup = options.cleanup;
    this.regions = {
      [EAST]: new Region(EAST, ports[0] ?? 0),
      [WEST]: new Region(WEST, ports[1] ?? 0),
    };
    const maxSockets = options.maxSockets ?? 64;
    // The bench reads as a person would: the CA to verify the regions, the admin token.
    this.#agent =
      (options.links ?? 'mutual-tls') === 'mutual-tls'
        ? new HttpsAgent({ keepAlive: true, maxSockets, ca: caPem })
        : new HttpAgent({ keepAlive: true, maxSockets });
    options.cleanup.defer('close the HTTP agent', () => this.#agent.destroy());
  }

  /** Writes the configuration; starts nothing. */
  static async create(options: PairOptions): Promise<RegionPair> {
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    const regionYaml = (name: RegionName, i: number) => ({
      name,
      priority: i + 1,
      address: HOST,
      api: { port: ports[i] },
      cnc: { port: 0 },
      mqtt: { port: ports[i + 2] },
      store: options.stores[name],
    });
    const config = {
      logging: { level: 'warn' },
      links: { mode: options.links ?? 'mutual-tls' },
      regions: [regionYaml(EAST, 0), regionYaml(WEST, 1)],
      ...(options.replication ? { replication: options.replication } : {}),
    };
    const configFile = join(options.stateDir, 'iotdr.yaml');
    // JSON is YAML.
    await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
    // Made here, as `iotdr up` does, so both regions find one CA and the bench's agent can trust it.
    const ca = await loadOrCreateCa(join(options.stateDir, 'pki'));
    return new RegionPair(options, ports, configFile, ca.certificatePem);
  }

  /** Spawns the region; resolves once the process runs (not yet serving: see `waitUp`). */
  spawn(name: RegionName): IotdrProcess {
    const region = this.regions[name];
    check(!region.running, `${name} is already running`);
    const proc = spawnIotdr(['region', '--name', name, '--config', this.configFile], {
      IOTDR_HOME: this.stateDir,
    });
    region.proc = proc;
    region.setStop(this.#cleanup.defer(`stop ${name} (pid ${proc.child.pid})`, () => stopProcess(proc)));
    return proc;
  }

  /**
   * Polls /livez every `intervalMs` until it answers 200; returns the moment it first did
   * (process.hrtime, ns). Fails when the process exits first or the time runs out.
   */
  async waitUp(name: RegionName, intervalMs = 20): Promise<bigint> {
    const region = this.regions[name];
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const proc = region.proc;
      if (!proc || !region.running) {
        throw new Error(`${name} exited before it served:\n${proc?.output() ?? ''}`);
      }
      try {
        const r = await this.call(name, 'GET', '/livez', undefined, 1000);
        if (r.status === 200) {
          const at = process.hrtime.bigint();
          if (!this.#token) {
            this.#token = (await readFile(join(this.stateDir, 'secrets', 'admin.token'), 'utf8')).trim();
          }
          return at;
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    throw new Error(`${name} did not serve within ${START_TIMEOUT_MS} ms:\n${region.proc?.output() ?? ''}`);
  }

  async start(name: RegionName): Promise<void> {
    this.spawn(name);
    await this.waitUp(name);
  }

  /** Stops the region (SIGTERM, SIGKILL after 15 s) and checks it exited 0. */
  async stop(name: RegionName): Promise<void> {
    const stopped = await this.regions[name].stop();
    check(
      stopped === undefined || stopped.exit === 0,
      `${name} exited with ${String(stopped?.exit)}:\n${stopped?.output}`,
    );
  }

  /** Everything the region printed (level warn and above), in all its runs so far. */
  output(name: RegionName): string {
    const region = this.regions[name];
    return [...region.earlier, region.proc?.output() ?? ''].join('\n');
  }

  call(
    name: RegionName,
    method: string,
    path: string,
    body?: string,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<Answer> {
    const port = this.regions[name].port;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      if (this.#token) headers.authorization = `Bearer ${this.#token}`;
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const request = this.#agent instanceof HttpsAgent ? httpsRequest : httpRequest;
      const req = request({ host: HOST, port, method, path, agent: this.#agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${name} ${method} ${path}: no answer in time`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  async json<T>(name: RegionName, path: string): Promise<T> {
    const r = await this.call(name, 'GET', path);
    check(r.status === 200, `${name} GET ${path} answered ${r.status}: ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body) as T;
  }

  lastSeq(name: RegionName): Promise<number> {
    return this.json<{ lastSeq: number }>(name, '/livez').then((l) => l.lastSeq);
  }

  /** The link of `name` that pulls from its peer. */
  async link(name: RegionName): Promise<LinkStatus> {
    const status = await this.json<{ links: LinkStatus[] }>(name, '/v1/replication/status');
    const peer = name === EAST ? WEST : EAST;
    const link = status.links.find((l) => l.peer === peer);
    check(link !== undefined, `${name} has no link from ${peer}: ${JSON.stringify(status)}`);
    return link;
  }

  /** The region's /metrics text. */
  async metrics(name: RegionName): Promise<string> {
    const r = await this.call(name, 'GET', '/metrics');
    check(r.status === 200, `${name} GET /metrics answered ${r.status}`);
    return r.body;
  }

  /**
   * Polls `name`'s link every `intervalMs` until `done(link)`; returns the link and the moment
   * (process.hrtime, ns) of the poll that saw it. Fails after `timeoutMs`, or at once when the link
   * dead-letters a change.
   */
  async waitForLink(
    name: RegionName,
    done: (link: LinkStatus) => boolean,
    what: string,
    timeoutMs: number,
    intervalMs = 25,
  ): Promise<{ link: LinkStatus; at: bigint }> {
    const deadline = Date.now() + timeoutMs;
    let link: LinkStatus | undefined;
    while (Date.now() < deadline) {
      link = await this.link(name);
      const at = process.hrtime.bigint();
      check(link.deadLetters === 0, `${name} dead-lettered ${link.deadLetters} change(s)`);
      if (done(link)) return { link, at };
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    throw new Error(
      `${name}: ${what} not reached within ${timeoutMs / 1000} s; last link status ${JSON.stringify(link)}`,
    );
  }
}

/** Seconds between two process.hrtime.bigint() readings. */
export function secondsBetween(from: bigint, to: bigint): number {
  return Number(to - from) / 1e9;
}

/**
 * The whole platform as child processes from one configuration — every region, control, analytics
 * and the configured DNS servers — each with its log, started together and waited for until it
 * answers. `iotdr up` runs it for a user; `iotdr drill` runs it with fault injection, and kills or
 * restarts processes on purpose.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { baseUrl, moduleEntry } from './common/index.js';
import type { IotdrConfig, RegionConfig } from './config/index.js';
import { dnsTokenPath } from './control.js';
import { loadOrCreateCa } from './pki/index.js';
import { analyticsTokenPath, loadOrCreateAdminToken, loadOrCreateToken } from './region.js';

/** How long a process may take to answer after it was started, in ms. */
export const START_TIMEOUT_MS = 60_000;

/** What a region's /livez says of its listeners (the real ports when the config says 0). */
export interface LiveInfo {
  mqtt?: string;
  cnc?: string;
  mqttToken?: string;
}

export interface PlatformProcess {
  /** `us-east`, `control`, `analytics`, `dns-<name>`: also its log file's name. */
  readonly name: string;
  readonly what: string;
  readonly args: readonly string[];
  /** Where it answers, and the path that says it is ready. */
  readonly url: string;
  readonly readyPath: string;
  child: ChildProcess;
  /** For a region: its listeners as /livez reported them. */
  live: LiveInfo;
}

export interface PlatformOptions {
  config: IotdrConfig;
  stateDir: string;
  /** The configuration file the children read; undefined runs them on the defaults. */
  configFile?: string;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Start the regions with fault injection (`--enable-faults`). */
  faults?: boolean;
  /** Called with a line for each process as it becomes ready. */
  onReady?: (process: PlatformProcess) => void;
}

export interface RunningPlatform {
  readonly processes: ReadonlyMap<string, PlatformProcess>;
  readonly logDir: string;
  /** Resolves with why, when a process exits that nobody stopped or killed. */
  readonly exited: Promise<string>;
  /** Sends a signal to one process (the drill's region-crash: SIGKILL); its exit is expected. */
  kill(name: string, signal: NodeJS.Signals): Promise<void>;
  /** Starts a killed or stopped process again and waits until it answers. */
  restart(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** The primary is the region with the lowest priority number. */
export function roleOf(config: IotdrConfig, region: RegionConfig): 'primary' | 'secondary' {
  const best = Math.min(...config.regions.map((r) => r.priority));
  return region.priority === best ? 'primary' : 'secondary';
}

async function waitReady(p: PlatformProcess, deadline: number): Promise<LiveInfo> {
  while (Date.now() < deadline) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`exited (${p.child.exitCode ?? p.child.signalCode}) before answering`);
    }
    try {
      const res = await fetch(`${p.url}${p.readyPath}`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) {
        const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
        const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
        const mqtt = text(body.mqtt);
        const mqttToken = text(body.mqttToken);
        const cnc = text(body.cnc);
        return { ...(mqtt ? { mqtt } : {}), ...(mqttToken ? { mqttToken } : {}), ...(cnc ? { cnc } : {}) };
      }
      await res.body?.cancel();
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`did not answer ${p.url}${p.readyPath} within ${START_TIMEOUT_MS / 1000} s`);
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts every process and resolves once each answers (regions, then analytics, control and the
 * DNS servers); on a failure stops them all and throws, naming the process and its log.
 */
export async function startPlatform(options: PlatformOptions): Promise<RunningPlatform> {
  const { config, stateDir } = options;
  // Made here once, so the processes starting side by side find them instead of racing to make them.
  await loadOrCreateCa(join(stateDir, 'pki'));
  await loadOrCreateAdminToken(stateDir);
  await loadOrCreateToken(stateDir, analyticsTokenPath(stateDir));
  if (config.dns.servers.length > 0) await loadOrCreateToken(stateDir, dnsTokenPath(stateDir));
  const logDir = join(stateDir, 'logs');
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  // This installation's own `iotdr`, compiled or from source.
  const { execArgv, url } = moduleEntry(import.meta.url, './cli/bin');
  const entry = fileURLToPath(url);

  const specs: Array<Omit<PlatformProcess, 'child' | 'live'>> = [
    ...config.regions.map((region) => ({
      name: region.name,
      what: `region ${region.name}`,
      args: ['region', '--name', region.name, ...(options.faults ? ['--enable-faults'] : [])],
      url: baseUrl(region.address, region.api.port),
      readyPath: '/livez',
    })),
    {
      name: 'analytics',
      what: 'analytics',
      args: ['analytics'],
      url: baseUrl(config.analytics.address, config.analytics.port),
      readyPath: '/livez',
    },
    {
      name: 'control',
      what: 'control',
      args: ['control'],
      url: baseUrl(config.control.address, config.control.port),
      readyPath: '/livez',
    },
    ...config.dns.servers.map((d) => ({
      name: `dns-${d.name}`,
      what: `DNS server ${d.name}`,
      args: ['dns', '--name', d.name],
      url: baseUrl(d.address, d.httpPort),
      // Ready once it serves a decision.
      readyPath: '/health',
    })),
  ];

  const processes = new Map<string, PlatformProcess>();
  const expected = new Set<ChildProcess>();
  let stopping = false;
  let reportExit: (why: string) => void = () => {};
  const exited = new Promise<string>((resolve) => {
    reportExit = resolve;
  });
  const spawnOne = (spec: Omit<PlatformProcess, 'child' | 'live'>): ChildProcess => {
    const log = openSync(join(logDir, `${spec.name}.log`), 'a', 0o600);
    const args = [...execArgv, entry, ...spec.args];
    if (options.configFile) args.push('--config', options.configFile);
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', log, log],
      env: { ...options.env, IOTDR_HOME: stateDir },
      cwd: options.cwd,
    });
    child.once('exit', (code, signal) => {
      if (!stopping && !expected.has(child))
        reportExit(`${spec.what} exited (${code ?? signal}); see ${join(logDir, `${spec.name}.log`)}`);
    });
    return child;
  };

  const stopAll = async () => {
    stopping = true;
    await Promise.all([...processes.values()].map((p) => stopChild(p.child)));
  };
  const ready = async (p: PlatformProcess, deadline: number) => {
    try {
      p.live = await waitReady(p, deadline);
      options.onReady?.(p);
    } catch (error) {
      throw new Error(`${p.what} ${(error as Error).message}; see ${join(logDir, `${p.name}.log`)}`);
    }
  };

  const launch = (spec: Omit<PlatformProcess, 'child' | 'live'>): PlatformProcess => {
    const p = { ...spec, child: spawnOne(spec), live: {} };
    processes.set(spec.name, p);
    return p;
  };
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    // The regions first, side by side, then analytics (the regions' analytics checks need it),
    // then control: a controller started before them would see the primary fail its probes, and
    // move the fleet to whichever region answered first.
    const regions = specs.slice(0, config.regions.length).map(launch);
    await Promise.all(regions.map((p) => ready(p, deadline)));
    for (const spec of specs.slice(config.regions.length)) await ready(launch(spec), deadline);
  } catch (error) {
    await stopAll();
    throw error;
  }

  return {
    processes,
    logDir,
    exited,
    async kill(name, signal) {
      const p = processes.get(name);
      if (!p) throw new Error(`no process ${name}`);
      expected.add(p.child);
      const gone = new Promise<void>((resolve) =>
        p.child.exitCode !== null || p.child.signalCode !== null
          ? resolve()
          : p.child.once('exit', () => resolve()),
      );
      p.child.kill(signal);
      await gone;
    },
    async restart(name) {
      const p = processes.get(name);
      if (!p) throw new Error(`no process ${name}`);
      if (p.child.exitCode === null && p.child.signalCode === null) {
        expected.add(p.child);
        await stopChild(p.child);
      }
      p.child = spawnOne(p);
      await ready(p, Date.now() + START_TIMEOUT_MS);
    },
    stop: stopAll,
  };
}

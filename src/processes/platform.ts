/**
 * The whole platform as child processes from one configuration — every region (and with JetStream
 * its NATS servers), analytics, control (the single node, or the etcd members and the control
 * nodes) and the configured DNS servers —
 * each with its log, started together and waited for until it answers, and supervised: one that
 * dies is restarted as `supervision` says, the others serving on.
 * `iotdr up` runs it for a user; `iotdr drill` runs it with fault injection, and kills or restarts
 * processes on purpose.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import type { Agent } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { baseUrl, type Clock, moduleEntry, type Timers } from '../common/index.js';
import {
  analyticsTokenPath,
  controlNodesOf,
  controlProcessName,
  dnsTokenPath,
  etcdProcessName,
  type IotdrConfig,
  linkScheme,
  natsProcessName,
  type RegionConfig,
} from '../config/index.js';
import type { DrillPlatform, DrillPlatformOptions } from '../drill/index.js';
import { sendRequest, siteAgent } from '../http/index.js';
import { loadOrCreateCa } from '../pki/index.js';
import { platformStartFailed } from './errors.js';
import { etcdMemberCredentials, etcdMemberUrl, etcdSiteOf } from './etcd.js';
import { natsServerAnswers, natsServerUrl } from './nats.js';
import { loadOrCreateAdminToken, loadOrCreateTlsTicketSecret, loadOrCreateToken } from './region.js';
import { type ProcessEvent, Supervisor } from './supervisor.js';

export type { ProcessEvent } from './supervisor.js';

/** How long a process may take to answer after it was started, in ms. */
export const START_TIMEOUT_MS = 60_000;

/** What a region's /livez says of its listeners (the real ports when the config says 0). */
export interface LiveInfo {
  mqtt?: string;
  cnc?: string;
  mqttToken?: string;
}

/**
 * How a process says it is ready: a 2xx from a path of its HTTP(S) API, asked over HTTPS with the
 * platform's CA or with `trust`, an agent with a client certificate (etcd); or, for a NATS server,
 * the `INFO` line its client port greets with saying JetStream is on.
 */
export type Readiness =
  | { readonly kind: 'http'; readonly path: string; readonly trust?: Agent }
  | { readonly kind: 'nats'; readonly address: string; readonly port: number };

export interface PlatformProcess {
  /**
   * `us-east`, `analytics`, `control` (the single node) or `control-<node>`, `etcd-<member>`,
   * `nats-<region>-<server>`, `dns-<name>`: also its log file's name.
   */
  readonly name: string;
  readonly what: string;
  readonly args: readonly string[];
  /** Where it answers (an HTTP(S) base URL, or a NATS client URL). */
  readonly url: string;
  readonly ready: Readiness;
  /** Its log file: `<state>/logs/<name>.log`. */
  readonly log: string;
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
  /** Called for each process as it becomes ready: at start, and after every restart. */
  onReady?: (process: PlatformProcess) => void;
  /** Called when a process dies unexpectedly, and as supervision restarts it (`supervision`). */
  onEvent?: (event: ProcessEvent, process: PlatformProcess) => void;
  /**
   * Aborting ends supervision before the processes are stopped: a Ctrl-C reaches the children as
   * well, and their exits are then a shutdown, neither reported nor restarted.
   */
  signal?: AbortSignal;
  /** For supervision's delays; default the system clock and timers. */
  clock?: Clock;
  timers?: Timers;
}

export interface RunningPlatform {
  readonly processes: ReadonlyMap<string, PlatformProcess>;
  readonly logDir: string;
  /**
   * Sends a signal to one process (the drill's region-crash: SIGKILL); its exit is expected, so
   * supervision leaves it down (and cancels a restart it had pending) until `restart`.
   */
  kill(name: string, signal: NodeJS.Signals): Promise<void>;
  /** Starts a killed or stopped process again (stopping it first if it runs) and waits until it answers. */
  restart(name: string): Promise<void>;
  /** Ends supervision, cancelling pending restarts, then stops every process. */
  stop(): Promise<void>;
}

/** A restart delay as people read it: `10 s`, `2.7 min`. */
export function delayText(ms: number): string {
  return ms < 120_000 ? `${Number((ms / 1000).toFixed(1))} s` : `${Number((ms / 60_000).toFixed(1))} min`;
}

/** The line `iotdr up` and the drill print for a process event. */
export function eventLine(event: ProcessEvent, p: PlatformProcess): string {
  switch (event.type) {
    case 'exited': {
      const next =
        event.restartInMs === null
          ? 'not restarted (supervision.restart: never)'
          : `restarting it in ${delayText(event.restartInMs)}`;
      return `${p.what} exited (${event.signal ?? `code ${event.code}`}); ${next}; see ${p.log}`;
    }
    case 'restarted':
      return `${p.what} restarted (pid ${p.child.pid}): ${p.url}${p.ready.kind === 'http' ? p.ready.path : ''} answers`;
    case 'restart-failed':
      return `${p.what} did not come back: ${event.error.message}; trying again in ${delayText(event.restartInMs)}`;
  }
}

/** The primary is the region with the lowest priority number. */
export function roleOf(config: IotdrConfig, region: RegionConfig): 'primary' | 'secondary' {
  const best = Math.min(...config.regions.map((r) => r.priority));
  return region.priority === best ? 'primary' : 'secondary';
}

/** Its listeners once it is ready, or undefined while it is not. */
async function askReady(p: PlatformProcess, caPem: string): Promise<LiveInfo | undefined> {
  const ready = p.ready;
  if (ready.kind === 'nats') return (await natsServerAnswers(ready.address, ready.port)) ? {} : undefined;
  const res = await sendRequest(`${p.url}${ready.path}`, {
    method: 'GET',
    headers: { accept: 'application/json' },
    trust: ready.trust ?? caPem,
    signal: AbortSignal.timeout(1000),
  });
  if (res.status < 200 || res.status >= 300) return undefined;
  const body = parsedObject(res.text);
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const mqtt = text(body.mqtt);
  const mqttToken = text(body.mqttToken);
  const cnc = text(body.cnc);
  return { ...(mqtt ? { mqtt } : {}), ...(mqttToken ? { mqttToken } : {}), ...(cnc ? { cnc } : {}) };
}

async function waitReady(p: PlatformProcess, deadline: number, caPem: string): Promise<LiveInfo> {
  while (Date.now() < deadline) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`exited (${p.child.exitCode ?? p.child.signalCode}) before answering`);
    }
    try {
      const live = await askReady(p, caPem);
      if (live !== undefined) return live;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const where = p.ready.kind === 'http' ? `${p.url}${p.ready.path}` : `${p.url} with JetStream`;
  throw new Error(`did not answer ${where} within ${START_TIMEOUT_MS / 1000} s`);
}

function parsedObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
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
 * Starts every process and resolves once each answers (the NATS servers with JetStream, the
 * regions, then analytics, the etcd members, control and the DNS servers); on a failure stops them all and throws, naming the process
 * and its log.
 */
export async function startPlatform(options: PlatformOptions): Promise<RunningPlatform> {
  const { config, stateDir } = options;
  // Made here once, so the processes starting side by side find them instead of racing to make them.
  const ca = await loadOrCreateCa(join(stateDir, 'pki'));
  await loadOrCreateAdminToken(stateDir);
  await loadOrCreateTlsTicketSecret(stateDir);
  // The tokens that stand in for site certificates exist on the plain loopback switch only.
  if (config.links.mode === 'plain-loopback') {
    await loadOrCreateToken(stateDir, analyticsTokenPath(stateDir));
    if (config.dns.servers.length > 0) await loadOrCreateToken(stateDir, dnsTokenPath(stateDir));
  }
  const scheme = linkScheme(config);
  const logDir = join(stateDir, 'logs');
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  // This installation's own `iotdr`, compiled or from source.
  const { execArgv, url } = moduleEntry(import.meta.url, '../cli/bin');
  const entry = fileURLToPath(url);

  type Spec = Omit<PlatformProcess, 'child' | 'live'>;
  const logOf = (name: string) => join(logDir, `${name}.log`);
  const several = config.control.nodes.length > 0;
  // Over mutual TLS an etcd member answers only a client with a certificate of the CA: its own
  // serves, made here before the member starts (the member then finds it good and keeps it).
  const agents: Agent[] = [];
  const etcd: Spec[] = [];
  if (several)
    for (const member of config.control.etcd.members) {
      let trust: Agent | undefined;
      if (config.links.mode === 'mutual-tls') {
        trust = siteAgent(await etcdMemberCredentials(config, stateDir, member), etcdSiteOf(member.name));
        agents.push(trust);
      }
      etcd.push({
        name: etcdProcessName(member.name),
        what: `etcd member ${member.name}`,
        args: ['etcd', '--member', member.name],
        url: etcdMemberUrl(config, member),
        // Answers 200 once the member has a leader and a quorum read passes.
        ready: { kind: 'http', path: '/health', ...(trust === undefined ? {} : { trust }) },
        log: logOf(etcdProcessName(member.name)),
      });
    }
  const control: Spec[] = controlNodesOf(config).map((node) => {
    // The single node keeps the name it always had.
    const name = controlProcessName(config, node.name);
    return {
      name,
      what: several ? `control node ${node.name}` : 'control',
      args: several ? ['control', '--node', node.name] : ['control'],
      url: node.url,
      ready: { kind: 'http', path: '/livez' },
      log: logOf(name),
    };
  });
  // With JetStream a region's bus is its NATS: every server of every region, before the regions.
  const nats: Spec[] =
    config.events.engine !== 'jetstream'
      ? []
      : config.regions.flatMap((region) =>
          (region.nats?.servers ?? []).map((server) => ({
            name: natsProcessName(region.name, server.name),
            what: `NATS server ${server.name} of ${region.name}`,
            args: ['nats', '--region', region.name, '--server', server.name],
            url: natsServerUrl(config, server),
            ready: { kind: 'nats', address: server.address, port: server.clientPort },
            log: logOf(natsProcessName(region.name, server.name)),
          })),
        );
  // Each stage side by side, one after the other: the regions' NATS servers (together: a cluster's
  // JetStream waits for its peers), the regions, then analytics (the regions' analytics checks
  // need it), the etcd members (together: one alone has no quorum, so no health), then control —
  // a controller started before the regions would see the primary fail its probes and move the
  // fleet to whichever region answered first — and the DNS servers that follow it.
  const stages: Spec[][] = [
    nats,
    config.regions.map((region) => ({
      name: region.name,
      what: `region ${region.name}`,
      args: ['region', '--name', region.name, ...(options.faults ? ['--enable-faults'] : [])],
      url: baseUrl(region.address, region.api.port, scheme),
      ready: { kind: 'http', path: '/livez' },
      log: logOf(region.name),
    })),
    [
      {
        name: 'analytics',
        what: 'analytics',
        args: ['analytics', ...(options.faults ? ['--enable-faults'] : [])],
        url: baseUrl(config.analytics.address, config.analytics.port, scheme),
        ready: { kind: 'http', path: '/livez' },
        log: logOf('analytics'),
      },
    ],
    etcd,
    control,
    config.dns.servers.map((d) => ({
      name: `dns-${d.name}`,
      what: `DNS server ${d.name}`,
      args: ['dns', '--name', d.name],
      url: baseUrl(d.address, d.httpPort, scheme),
      // Ready once it serves a decision.
      ready: { kind: 'http', path: '/health' },
      log: logOf(`dns-${d.name}`),
    })),
  ];

  const processes = new Map<string, PlatformProcess>();
  const processOf = (name: string): PlatformProcess => {
    const p = processes.get(name);
    if (!p) throw new Error(`no process ${name}`);
    return p;
  };
  /** Children stopped or killed on purpose: their exit is no crash. */
  const expected = new WeakSet<ChildProcess>();
  let stopping = false;
  const spawnOne = (spec: Spec): ChildProcess => {
    const log = openSync(spec.log, 'a', 0o600);
    const args = [...execArgv, entry, ...spec.args];
    if (options.configFile) args.push('--config', options.configFile);
    try {
      return spawn(process.execPath, args, {
        stdio: ['ignore', log, log],
        env: { ...options.env, IOTDR_HOME: stateDir },
        cwd: options.cwd,
      });
    } finally {
      // The child has its own copy; ours would leak one descriptor per restart.
      closeSync(log);
    }
  };

  const supervisor = new Supervisor({
    policy: config.supervision,
    start: async (name) => {
      const p = processOf(name);
      const child = spawnOne(p);
      p.child = child;
      try {
        await ready(p, Date.now() + START_TIMEOUT_MS);
      } catch (error) {
        // One that runs without answering would hold the ports the next attempt needs.
        expected.add(child);
        await stopChild(child);
        throw error;
      }
    },
    onEvent: (event) => options.onEvent?.(event, processOf(event.name)),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.timers ? { timers: options.timers } : {}),
  });
  const endSupervision = () => supervisor.stop();
  if (options.signal?.aborted) endSupervision();
  else options.signal?.addEventListener('abort', endSupervision, { once: true });

  /** From the moment a child answers, its death is the supervisor's to handle. */
  const watch = (p: PlatformProcess) => {
    const child = p.child;
    const died = (code: number | null, signal: NodeJS.Signals | null) => {
      if (!stopping && !expected.has(child)) supervisor.exited(p.name, code, signal);
    };
    if (child.exitCode !== null || child.signalCode !== null) died(child.exitCode, child.signalCode);
    else child.once('exit', died);
  };
  const stopAll = async () => {
    supervisor.stop();
    options.signal?.removeEventListener('abort', endSupervision);
    stopping = true;
    await Promise.all([...processes.values()].map((p) => stopChild(p.child)));
    for (const agent of agents) agent.destroy();
  };
  const ready = async (p: PlatformProcess, deadline: number) => {
    try {
      p.live = await waitReady(p, deadline, ca.certificatePem);
    } catch (error) {
      throw platformStartFailed(p.what, (error as Error).message, p.log, error);
    }
    watch(p);
    options.onReady?.(p);
  };

  const launch = async (spec: Spec, deadline: number): Promise<void> => {
    const p = { ...spec, child: spawnOne(spec), live: {} };
    processes.set(spec.name, p);
    await ready(p, deadline);
    supervisor.running(p.name);
  };
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const stage of stages) await Promise.all(stage.map((spec) => launch(spec, deadline)));
  } catch (error) {
    await stopAll();
    throw error;
  }

  return {
    processes,
    logDir,
    async kill(name, signal) {
      const p = processOf(name);
      supervisor.release(name);
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
      const p = processOf(name);
      supervisor.release(name);
      expected.add(p.child);
      await stopChild(p.child);
      p.child = spawnOne(p);
      await ready(p, Date.now() + START_TIMEOUT_MS);
      supervisor.running(name);
    },
    stop: stopAll,
  };
}

/** The platform as `iotdr drill` drives it: every process, with fault injection on. */
export function startDrillPlatform(options: DrillPlatformOptions): Promise<DrillPlatform> {
  return startPlatform({
    ...options,
    faults: true,
    onReady: (p) => options.onReady(p.what),
    onEvent: (event, p) => options.onEvent(eventLine(event, p)),
  });
}

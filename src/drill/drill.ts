/**
 * `iotdr drill`: the whole platform from a fresh state directory (regions with fault injection,
 * control, analytics), a simulated fleet, a real fault in the primary, and the cost measured —
 * each RTO factor from the controller's decision log, every device's reconnection, and the RPO
 * (messages accepted by devices vs delivered to analytics, registry changes, commands).
 */
import { ANALYTICS_ROUTES } from '../analytics/index.js';
import { BROKER_ROUTES } from '../broker/index.js';
import { CNC_ROUTES } from '../commands/index.js';
import { waitUntil } from '../common/index.js';
import {
  analyticsUrlOf,
  controlProcessName,
  type IotdrConfig,
  natsProcessName,
  type RegionConfig,
} from '../config/index.js';
import { type ControlClient, FAILOVER_ROUTES, type SwitchTimings } from '../failover/index.js';
import { type DrillFault, FAULT_ROUTES } from '../faults/index.js';
import {
  type Ceiling,
  controlApi,
  type DeviceRecord,
  type Fleet,
  type FleetDevice,
  launchFleet,
  loopbackSource,
  measureCeiling,
  onLoopback,
  platformCredentials,
  regionApis,
  summaryLine,
} from '../fleet/index.js';
import { ApiClient } from '../http/index.js';
import { REGISTRY_ROUTES } from '../registry/index.js';
import { drillAborted, drillConfigError, drillTimeout, isDrillError, notSteady } from './errors.js';
import { type DrillReport, type FailbackMeasure, percentile, type SwitchMeasure } from './report.js';

/** The platform as the drill drives it: every process started, one killed and restarted, all stopped. */
export interface DrillPlatform {
  /** Where the processes' logs are. */
  readonly logDir: string;
  /** Sends a signal to one process; supervision leaves it down until `restart`. */
  kill(name: string, signal: NodeJS.Signals): Promise<void>;
  /** Starts a killed process again and waits until it answers. */
  restart(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** What the drill asks of the platform it starts (the processes' front door answers it). */
export interface DrillPlatformOptions {
  config: IotdrConfig;
  stateDir: string;
  configFile?: string;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Each process as it becomes ready: its description. */
  onReady: (what: string) => void;
  /** An unexpected death, or supervision restarting a process: the line to print. */
  onEvent: (line: string) => void;
}

export interface DrillOptions {
  /** Starts every process of the platform with fault injection on. */
  startPlatform: (options: DrillPlatformOptions) => Promise<DrillPlatform>;
  config: IotdrConfig;
  /** The file the platform's processes read; undefined: the defaults. */
  configFile?: string;
  /** A fresh, empty state directory. */
  stateDir: string;
  env: Record<string, string | undefined>;
  cwd: string;
  devices: number;
  auth: 'mtls' | 'token';
  fault: DrillFault;
  /** Kill the leading control node (SIGKILL) at the moment of the fault: needs control nodes. */
  controlLeaderCrash?: boolean;
  /**
   * Kill one NATS server of the secondary region (SIGKILL) at the moment of the fault — the one
   * leading its event stream, as `streamLeader` names it: needs JetStream on three servers or more.
   */
  natsNodeCrash?: boolean;
  /** The server leading a region's event stream (its name in `regions[].nats.servers`), if known. */
  streamLeader?: (region: string) => Promise<string | undefined>;
  failback: boolean;
  /** Messages per second of the whole fleet. Default: one per device per second, at most 1,000. */
  ratePerSecond?: number;
  /** How long devices may take to come back after the fault before the drill gives up, ms. Default: twice the limit, at least 3 minutes. */
  recoveryTimeoutMs?: number;
  /** A line of progress for the terminal. */
  onProgress?: (line: string) => void;
  /** Aborting ends the drill: every process it started is stopped and runDrill rejects. */
  signal?: AbortSignal;
}

/** The components whose failure each fault makes; the drill needs them critical to move the fleet. */
const FAULT_COMPONENT: Partial<Record<DrillFault, string>> = {
  'app-unhealthy': 'app',
  'cnc-unhealthy': 'cnc',
  'analytics-unhealthy': 'analytics',
};

/** The fleet's default message rate is one per device per second, up to this many over the fleet. */
const DEFAULT_MAX_RATE = 1000;

/** How often a long wait shows the fleet's state, ms. */
const STATUS_EVERY_MS = 3000;

/** The fault joined to a region fault with `+`: the leading control node gets SIGKILL at the same moment. */
export const CONTROL_LEADER_CRASH = 'control-leader-crash';

/** The fault joined to a region fault with `+`: a NATS server of the secondary gets SIGKILL at the same moment. */
export const NATS_NODE_CRASH = 'nats-node-crash';

/** The most a node that does not lead waits before it sees the leader key gone, ms (the election's poll). */
const ELECTION_POLL_MS = 500;

/** Registry changes made in the primary just before the fault. */
const REGISTRY_CHANGES = 20;
/** Commands sent through command and control just before the fault. */
const COMMANDS = 10;

/** The fault as the report names it: `control-leader-crash+nats-node-crash+region-crash`. */
function faultName(options: DrillOptions): string {
  return [
    ...(options.controlLeaderCrash ? [CONTROL_LEADER_CRASH] : []),
    ...(options.natsNodeCrash ? [NATS_NODE_CRASH] : []),
    options.fault,
  ].join('+');
}

export async function runDrill(options: DrillOptions): Promise<DrillReport> {
  const { config, stateDir } = options;
  const progress = options.onProgress ?? (() => {});
  const [primary, secondary] = [...config.regions].sort((a, b) => a.priority - b.priority);
  if (!primary || !secondary) throw drillConfigError('a drill needs two regions');
  const component = FAULT_COMPONENT[options.fault];
  if (component && !config.health.critical.includes(component as never))
    throw drillConfigError(`${options.fault} moves the fleet only when ${component} is in health.critical`);
  if (component === 'app' && !config.health.checks.some((c) => c.component === 'app'))
    throw drillConfigError(
      'app-unhealthy needs a health check of component app (iotdr drill adds one watching the demo service when the regions share an API port)',
    );
  if (component === 'analytics' && !config.analytics.regionCheck)
    throw drillConfigError('analytics-unhealthy needs analytics.regionCheck: true');
  if (options.controlLeaderCrash && config.control.nodes.length < 2)
    throw drillConfigError(
      'control-leader-crash needs two control nodes or more, for one to take over (iotdr drill --control-nodes 3)',
    );
  if (
    options.natsNodeCrash &&
    (config.events.engine !== 'jetstream' || (secondary.nats?.servers.length ?? 0) < 3)
  )
    throw drillConfigError(
      `${NATS_NODE_CRASH} needs ${secondary.name}'s events in JetStream on three NATS servers or more, for the stream to keep a majority (iotdr drill --events jetstream --nats-servers 3)`,
    );
  const signal = options.signal;
  if (signal?.aborted) throw drillAborted();

  progress(
    `starting ${config.regions.map((r) => r.name).join(', ')}, control and analytics (fault injection on)`,
  );
  const platform = await options.startPlatform({
    config,
    stateDir,
    ...(options.configFile ? { configFile: options.configFile } : {}),
    env: options.env,
    cwd: options.cwd,
    onReady: (what) => progress(`  ${what} ready`),
    // A death the drill did not cause is part of what the drill shows; supervision restarts it.
    onEvent: (line) => progress(`  ${line}`),
  });
  let fleet: Fleet | undefined;
  const stopAll = () => {
    void fleet?.stop();
    void platform.stop();
  };
  signal?.addEventListener('abort', stopAll, { once: true });
  try {
    const { token, caPem } = await platformCredentials(stateDir);
    const api = (r: RegionConfig) => regionApis(config, r, token, caPem).api;
    const cnc = (r: RegionConfig) => regionApis(config, r, token, caPem).cnc;
    // Every control node: the drill reads state and events from whichever answers.
    const control = controlApi(config, token, caPem);
    const analytics = new ApiClient('analytics', analyticsUrlOf(config), token, caPem);

    await until(
      signal,
      async () => {
        const s = await control.request(FAILOVER_ROUTES.state);
        return s.mode.type === 'health' && s.activeRegion === primary.name;
      },
      60_000,
      `the controller following health with ${primary.name} active`,
    );

    progress(
      `onboarding ${options.devices} devices (${options.auth}) in ${primary.name}: ${
        options.auth === 'mtls' ? 'a bulk job through command and control' : 'things and broker tokens'
      }`,
    );
    const launched = await launchFleet({
      config,
      stateDir,
      count: options.devices,
      prefix: 'drill',
      auth: options.auth,
      region: primary,
      ratePerSecond: options.ratePerSecond ?? Math.min(options.devices, DEFAULT_MAX_RATE),
      onProgress: (done, total, phase) => progress(`  ${phase} ${done}/${total}`),
    });
    fleet = launched.fleet;
    const devices = launched.devices;
    const f = fleet;
    // The whole fleet connecting: two minutes, or more for a fleet that takes longer to power on.
    const fleetWaitMs = Math.max(120_000, options.devices * 20);
    const steady = await control.request(FAILOVER_ROUTES.state);
    // Nothing may have moved the fleet before the fault: that drill would measure nothing.
    const stillSteady = async (): Promise<true> => {
      const s = await control.request(FAILOVER_ROUTES.state);
      if (s.epoch !== steady.epoch || s.activeRegion !== primary.name) {
        const why = await whyDown(control, primary.name);
        throw notSteady(
          `the controller moved the fleet to ${s.activeRegion} before the fault (epoch ${s.epoch})${why}; see ${platform.logDir}/control.log`,
        );
      }
      return true;
    };
    progress('waiting for every device to publish through the primary');
    await until(
      signal,
      async () =>
        (await stillSteady()) &&
        f.records().length === devices.length &&
        f.records().every((r) => r.region === primary.name && r.firstAckAt !== null),
      fleetWaitMs,
      `every device publishing through ${primary.name}`,
      () => summaryOf(f),
      progress,
    );

    // The ceiling, in this run on this machine: the secondary, idle, under minimal clients.
    progress(
      `measuring ${secondary.name}'s ceiling: minimal clients (TLS, CONNECT, CONNACK), ${CEILING.inFlight} at once for ${CEILING.durationMs / 1000} s`,
    );
    const ceiling = await ceilingOf(config, secondary, options.auth, devices, caPem);
    progress(
      `  ${ceiling.connectsPerSecond.toLocaleString('en-US')} connects/s (${ceiling.refused} refused, ${ceiling.errors} failed, ${ceiling.timeouts} timed out)`,
    );
    await stillSteady();

    // The fleet's own reconnect time, no failover: every device dropped and back on the same region.
    progress('measuring the fleet’s own reconnect time (all devices disconnected, no failover)');
    const ownStart = Date.now();
    await api(primary).request(BROKER_ROUTES.disconnect, { body: { all: true } });
    await until(
      signal,
      async () =>
        (await stillSteady()) &&
        f
          .records()
          .every(
            (r) => r.region === primary.name && (r.reconnectedAt ?? 0) >= ownStart && r.firstAckAt !== null,
          ),
      fleetWaitMs,
      'every device back after the disconnect',
      () => summaryOf(f),
      progress,
    );
    const ownReconnectMs = Math.max(...f.records().map((r) => (r.firstAckAt ?? ownStart) - ownStart));

    // What must survive the fault: registry changes and commands made just before it.
    const changeNames = await makeChanges(api(primary), 'drill-change');
    const commandIds = await sendCommands(cnc(primary), devices);

    await stillSteady();
    // Long enough to see an RTO well past the target (1.5 × the limit), never under 3 minutes.
    const f0 = config.failover;
    const recoveryMs =
      options.recoveryTimeoutMs ??
      Math.max(180_000, 2 * (f0.intervalMs * f0.failureThreshold + ownReconnectMs));
    // With control-leader-crash, the node leading at the fault is killed with it; with
    // nats-node-crash, the NATS server leading the secondary's stream, where the fleet is going.
    let killedLeader: string | undefined;
    let killedNats: { region: string; server: string; ledStream: boolean } | undefined;
    const switched = await faultAndSwitch({
      fault: faultName(options),
      from: primary,
      to: secondary,
      epoch: steady.epoch,
      inject: async () => {
        const kills: Promise<void>[] = [];
        if (options.controlLeaderCrash) {
          const leader = (await control.request(FAILOVER_ROUTES.state)).control.leader?.node;
          if (leader === undefined) throw notSteady('no control node leads at the moment of the fault');
          killedLeader = leader;
          progress(`  killing the leading control node ${leader} (SIGKILL) with the fault`);
          kills.push(platform.kill(controlProcessName(config, leader), 'SIGKILL'));
        }
        if (options.natsNodeCrash) {
          const servers = secondary.nats?.servers.map((s) => s.name) ?? [];
          const leader = await options.streamLeader?.(secondary.name).catch(() => undefined);
          const server = leader !== undefined && servers.includes(leader) ? leader : (servers[0] as string);
          killedNats = { region: secondary.name, server, ledStream: server === leader };
          progress(
            `  killing ${secondary.name}'s NATS server ${server}${server === leader ? ', the leader of its stream,' : ''} (SIGKILL) with the fault`,
          );
          kills.push(platform.kill(natsProcessName(secondary.name, server), 'SIGKILL'));
        }
        const [at] = await Promise.all([
          inject(options.fault, primary, platform, api(primary), analytics),
          ...kills,
        ]);
        return at as number;
      },
      control,
      fleet: f,
      timeoutMs: recoveryMs,
      progress,
      signal,
    });
    // Who led the switch once the leader was killed; the killed node comes back afterwards.
    let controlLeader: { killed: string; next: string | null; leaseTtlMs: number } | undefined;
    if (killedLeader !== undefined) {
      const next = (await control.request(FAILOVER_ROUTES.state)).control.leader?.node ?? null;
      controlLeader = { killed: killedLeader, next, leaseTtlMs: config.control.etcd.leaseTtlMs };
      progress(`  ${next ?? 'no node'} leads; restarting ${killedLeader}`);
      await platform.restart(controlProcessName(config, killedLeader));
    }
    if (killedNats !== undefined) {
      progress(`  restarting ${killedNats.region}'s NATS server ${killedNats.server}`);
      await platform.restart(natsProcessName(killedNats.region, killedNats.server));
    }
    // RPO while the primary is away: what the secondary had when the fleet arrived.
    const missingAtSwitch = await missingIn(api(secondary), changeNames);
    const unknownAtSwitch = (await commandStates(cnc(secondary), commandIds)).filter(
      (state) => state === 'unknown',
    ).length;

    // Bring the primary back (as an operator would after the incident): restarted after a crash,
    // the fault cleared otherwise. Analytics then reads what its bus kept.
    progress('settling: publishing paused, queues draining');
    await settle(f, 'every device queue empty', signal);
    if (options.fault === 'region-crash' || options.fault === 'broker-crash') {
      progress(`restarting ${primary.name} so analytics can read what its bus kept`);
      await platform.restart(primary.name);
    } else if (options.fault === 'analytics-unhealthy') {
      await analytics.request(ANALYTICS_ROUTES.resumeIngest, { params: { region: primary.name } });
    } else {
      await api(primary).request(FAULT_ROUTES.clear, { params: { fault: options.fault } });
    }

    // After recovery: writes the primary held when it failed reach the secondary once it is back
    // (replication runs both ways); only what never arrives is lost.
    const missingAfterRecovery = await missingIn(api(secondary), changeNames, 60_000);
    const lostCommands = await lostIn(cnc(secondary), commandIds, progress, signal);

    let failback: FailbackMeasure | undefined;
    if (options.failback) {
      // The way back: changes made in the secondary while it was active must be home first.
      const backNames = await makeChanges(api(secondary), 'drill-failback-change');
      const backCommands = await sendCommands(cnc(secondary), devices);
      f.resume();
      progress(`waiting for ${primary.name} healthy again and ${secondary.name}'s changes replicated home`);
      const waitStart = Date.now();
      await until(
        signal,
        async () => {
          const s = await control.request(FAILOVER_ROUTES.state);
          return s.failbackAvailable === primary.name && (await missingIn(api(primary), backNames)) === 0;
        },
        120_000,
        `${primary.name} healthy again with ${secondary.name}'s changes`,
      );
      progress(`  ready for failback after ${Date.now() - waitStart} ms`);
      const state = await control.request(FAILOVER_ROUTES.state);
      const measured = await faultAndSwitch({
        fault: 'failback',
        from: secondary,
        to: primary,
        epoch: state.epoch,
        inject: async () => {
          const at = Date.now();
          await control.request(FAILOVER_ROUTES.failback, { body: { reason: 'drill failback' } });
          return at;
        },
        control,
        fleet: f,
        timeoutMs: recoveryMs,
        progress,
        signal,
      });
      failback = {
        ...measured,
        registry: {
          changesBeforeFailback: backNames.length,
          missingInPrimary: await missingIn(api(primary), backNames),
        },
        commands: {
          issuedBeforeFailback: backCommands.length,
          lost: await lostIn(cnc(primary), backCommands, progress, signal),
        },
      };
      await settle(f, 'every device queue empty after failback', signal);
    }

    // RPO: every message any device accepted, against what analytics holds from both buses.
    const accepted = f.records().reduce((n, r) => n + r.accepted, 0);
    let totals = { messages: 0, duplicates: 0, devicesWithGaps: 0, missing: 0 };
    progress('counting: every accepted message against what analytics holds');
    await until(
      signal,
      async () => {
        totals = await analytics.request(ANALYTICS_ROUTES.totals);
        return totals.messages >= accepted;
      },
      60_000,
      'analytics holding every accepted message',
      () => `${totals.messages}/${accepted} delivered`,
    ).catch(() => undefined);

    const f2 = config.failover;
    const detectionMs = f2.intervalMs * f2.failureThreshold + f2.timeoutMs;
    // A killed leader is replaced while the primary's failure is being detected: the slower of the two.
    const electionMs = controlLeader ? controlLeader.leaseTtlMs + ELECTION_POLL_MS : 0;
    const predictedRtoMs = Math.max(detectionMs, electionMs) + config.dns.ttl * 1000;
    // The soonest a decision can come: the threshold of failed probes, or the election when the
    // leader was killed too (a new leader must hold the lease before it decides).
    const decisionFloorMs = Math.max(f2.intervalMs * f2.failureThreshold, electionMs);
    const limitMs = decisionFloorMs + ownReconnectMs;
    return {
      fault: faultName(options),
      devices: devices.length,
      auth: options.auth,
      ...switched,
      ownReconnectMs,
      limitMs,
      ceiling,
      reconnectRate: reconnectRate(switched),
      physicalLimitMs: physicalLimitMs(decisionFloorMs, devices.length, ceiling),
      predictedRtoMs,
      ...(controlLeader ? { controlLeader } : {}),
      ...(killedNats ? { natsNode: killedNats } : {}),
      messages: {
        accepted,
        delivered: totals.messages,
        lost: Math.max(0, accepted - totals.messages),
        duplicated: totals.duplicates,
        devicesWithGaps: totals.devicesWithGaps,
      },
      registry: {
        changesBeforeFault: changeNames.length,
        missingInSecondary: missingAtSwitch,
        missingAfterRecovery,
      },
      commands: {
        issuedBeforeFault: commandIds.length,
        unknownInSecondary: unknownAtSwitch,
        lost: lostCommands,
      },
      config: {
        intervalMs: f2.intervalMs,
        timeoutMs: f2.timeoutMs,
        failureThreshold: f2.failureThreshold,
        ttlSeconds: config.dns.ttl,
        disconnectOnFailover: f2.disconnectOnFailover,
      },
      ...(failback ? { failback } : {}),
    };
  } finally {
    signal?.removeEventListener('abort', stopAll);
    await fleet?.stop();
    await platform.stop();
  }
}

/** How the drill measures the ceiling: enough in flight to keep the broker's line full, 1 s to warm up. */
const CEILING = {
  inFlight: 256,
  durationMs: 6000,
  warmupMs: 1000,
  connectTimeoutMs: 10_000,
  identities: 256,
};

/** The secondary's ceiling for the fleet's auth kind, as the fleet's own devices (those first). */
async function ceilingOf(
  config: IotdrConfig,
  region: RegionConfig,
  auth: 'mtls' | 'token',
  devices: readonly FleetDevice[],
  caPem: string,
): Promise<Ceiling> {
  return measureCeiling({
    host: region.address,
    port: auth === 'mtls' ? region.mqtt.port : region.mqtt.tokenPort,
    servername: `${config.names.mqtt}.${config.zone}`,
    caPem,
    identities: devices.slice(0, CEILING.identities).map((d) => ({ clientId: d.thingName, auth: d.auth })),
    inFlight: CEILING.inFlight,
    durationMs: CEILING.durationMs,
    warmupMs: CEILING.warmupMs,
    connectTimeoutMs: CEILING.connectTimeoutMs,
    // Each slot from its own loopback address, apart from the fleet's: the broker limits each address.
    ...(onLoopback(config)
      ? { localAddresses: Array.from({ length: CEILING.inFlight }, (_, i) => loopbackSource(i, 200)) }
      : {}),
  });
}

/** Devices per second from the decision to the last device back; null when some never came. */
function reconnectRate(s: SwitchMeasure): number | null {
  const decided = s.factors.decidedMs;
  const last = s.reconnectMs.max;
  if (decided === null || last === null || s.rtoMs === null) return null;
  return Math.round((s.reconnected * 1000) / Math.max(1, last - decided));
}

/** Detection (interval × threshold) and the fleet at the ceiling's pace: the best this machine allows. */
function physicalLimitMs(detectionMs: number, devices: number, ceiling: Ceiling): number | null {
  if (ceiling.connectsPerSecond <= 0) return null;
  return Math.round(detectionMs + (devices / ceiling.connectsPerSecond) * 1000);
}

/** Registry changes (things named `<prefix>-N`) made through one region's API; their names. */
async function makeChanges(api: ApiClient, prefix: string): Promise<string[]> {
  const names = Array.from({ length: REGISTRY_CHANGES }, (_, i) => `${prefix}-${i + 1}`);
  for (const name of names)
    await api.request(REGISTRY_ROUTES.putThing, {
      params: { name },
      body: { attributes: { drill: prefix } },
    });
  return names;
}

/** How many of the things the region does not know; with `waitMs`, once none is missing or it ran out. */
async function missingIn(api: ApiClient, names: readonly string[], waitMs = 0): Promise<number> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let missing = 0;
    for (const name of names) {
      try {
        await api.request(REGISTRY_ROUTES.getThing, { params: { name } });
      } catch {
        missing++;
      }
    }
    if (missing === 0 || Date.now() >= deadline) return missing;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Commands sent through one region's command and control to the first devices; their ids. */
async function sendCommands(cnc: ApiClient, devices: readonly { thingName: string }[]): Promise<string[]> {
  const ids: string[] = [];
  for (const device of devices.slice(0, COMMANDS)) {
    const sent = await cnc.request(CNC_ROUTES.issueCommand, {
      params: { thing: device.thingName },
      // Longer than a large fleet takes to come back: a command must outlive the switch.
      body: { name: 'drill-ping', timeoutMs: 600_000, maxAttempts: 5 },
    });
    ids.push(sent.commandId);
  }
  return ids;
}

/** Each command's state as the region knows it; `unknown` when it does not (yet). */
function commandStates(cnc: ApiClient, ids: readonly string[]): Promise<string[]> {
  return Promise.all(
    ids.map((id) =>
      cnc.request(CNC_ROUTES.command, { params: { id } }).then(
        (c): string => c.state,
        () => 'unknown',
      ),
    ),
  );
}

/**
 * Commands not answered as they should be, read in the region the fleet is on: waits while any is
 * still on its way (unknown there yet, pending or delivered), then counts those not `succeeded`.
 */
async function lostIn(
  cnc: ApiClient,
  ids: readonly string[],
  progress: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<number> {
  const deadline = Date.now() + 130_000;
  let now = await commandStates(cnc, ids);
  while (now.some((s) => s === 'pending' || s === 'delivered' || s === 'unknown') && Date.now() < deadline) {
    if (signal?.aborted) throw drillAborted();
    await new Promise((r) => setTimeout(r, 250));
    now = await commandStates(cnc, ids);
  }
  const lost = now.filter((s) => s !== 'succeeded').length;
  if (lost > 0) progress(`  commands not answered: ${now.join(', ')}`);
  return lost;
}

/** Makes the fault for real; resolves with when it was made. */
async function inject(
  fault: DrillFault,
  primary: RegionConfig,
  platform: DrillPlatform,
  api: ApiClient,
  analytics: ApiClient,
): Promise<number> {
  const at = Date.now();
  if (fault === 'region-crash') await platform.kill(primary.name, 'SIGKILL');
  else if (fault === 'analytics-unhealthy')
    await analytics.request(ANALYTICS_ROUTES.stopIngest, {
      params: { region: primary.name },
      body: { reason: 'drill' },
    });
  else await api.request(FAULT_ROUTES.inject, { params: { fault } });
  return at;
}

interface SwitchInput {
  fault: string;
  from: RegionConfig;
  to: RegionConfig;
  epoch: number;
  inject: () => Promise<number>;
  control: ControlClient;
  fleet: Fleet;
  timeoutMs: number;
  progress: (line: string) => void;
  signal: AbortSignal | undefined;
}

/** Injects, then waits for the switch and for every device publishing through the new region. */
async function faultAndSwitch(input: SwitchInput): Promise<SwitchMeasure> {
  const { fleet, control, progress, signal } = input;
  progress(
    `${input.fault}: ${input.fault === 'failback' ? 'routing control' : 'fault injected'} in ${input.from.name}`,
  );
  const faultAt = await input.inject();
  let timings: SwitchTimings | undefined;
  await until(
    signal,
    async () => {
      const s = await control.request(FAILOVER_ROUTES.state);
      if (s.epoch <= input.epoch || s.activeRegion !== input.to.name || !s.lastSwitch) return false;
      timings = s.lastSwitch.timings;
      return true;
    },
    input.timeoutMs,
    `the controller moving the fleet to ${input.to.name}`,
  );
  progress(`  decided after ${(timings?.decidedAt ?? faultAt) - faultAt} ms; waiting for the devices`);
  const onNew = (r: DeviceRecord) =>
    r.region === input.to.name && r.firstAckAt !== null && (r.reconnectedAt ?? 0) >= faultAt;
  const deadline = Date.now() + input.timeoutMs;
  let last = 0;
  while (Date.now() < deadline && !fleet.records().every(onNew)) {
    if (signal?.aborted) throw drillAborted();
    if (Date.now() - last >= 1000) {
      progress(`  ${summaryOf(fleet)}`);
      last = Date.now();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const records = fleet.records();
  const moved = records.filter(onNew);
  const reconnects = moved.map((r) => (r.reconnectedAt ?? faultAt) - faultAt).sort((a, b) => a - b);
  const publishing = moved.map((r) => (r.firstAckAt ?? faultAt) - faultAt);
  // Re-read: the executor records its later steps after the decision.
  const state = await control.request(FAILOVER_ROUTES.state);
  timings = state.lastSwitch?.timings ?? timings;
  const rel = (at: number | null | undefined) => (at === null || at === undefined ? null : at - faultAt);
  return {
    from: input.from.name,
    to: input.to.name,
    reconnected: moved.length,
    resumed: moved.filter((r) => r.resumed).length,
    rtoMs: moved.length === records.length ? Math.max(0, ...publishing) : null,
    detectionMs: rel(timings?.decidedAt),
    dnsSwitchMs: rel(timings?.dnsUpdatedAt),
    factors: {
      firstFailedProbeMs: rel(timings?.firstFailedProbeAt),
      thresholdCrossedMs: rel(timings?.thresholdCrossedAt),
      decidedMs: rel(timings?.decidedAt),
      dnsUpdatedMs: rel(timings?.dnsUpdatedAt),
      noticesPublishedMs: rel(timings?.noticesPublishedAt),
      disconnectsRequestedMs: rel(timings?.disconnectsRequestedAt),
    },
    reconnectMs: {
      p50: percentile(reconnects, 50),
      p95: percentile(reconnects, 95),
      p99: percentile(reconnects, 99),
      max: reconnects.at(-1) ?? null,
    },
  };
}

/**
 * Pauses publishing and waits until every queue is empty and the fleet's counts have stood still
 * for a while: the workers report every 100 ms, so the last accepted messages are counted.
 */
async function settle(fleet: Fleet, what: string, signal: AbortSignal | undefined): Promise<void> {
  fleet.pause();
  let last = '';
  let since = Date.now();
  await until(
    signal,
    async () => {
      const s = fleet.summary();
      const now = `${s.accepted}/${s.acked}/${s.queued}`;
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return s.queued === 0 && Date.now() - since >= 500;
    },
    60_000,
    what,
    () => summaryOf(fleet),
  );
}

function summaryOf(fleet: Fleet): string {
  return summaryLine(fleet.summary());
}

/** A wait of the drill: its own verdicts and an interruption end it, anything else is "not yet". */
function until(
  /** The running drill's abort signal: the wait ends when it fires. */
  signal: AbortSignal | undefined,
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  status?: () => string,
  /** Given: the status is shown every few seconds while the wait lasts. */
  show?: (line: string) => void,
): Promise<void> {
  return waitUntil(check, {
    timeoutMs,
    what,
    ...(status ? { status } : {}),
    ...(show ? { show: (line: string) => show(`  ${line}`) } : {}),
    showEveryMs: STATUS_EVERY_MS,
    ...(signal ? { signal } : {}),
    // The drill's own verdicts end the wait; anything else is "not yet" (a process restarting).
    fatal: isDrillError,
    timeoutError: drillTimeout,
    abortError: drillAborted,
  });
}

/** Why the controller last declared a region down, from the decision log: the cause and what failed. */
async function whyDown(control: ControlClient, region: string): Promise<string> {
  try {
    const page = await control.request(FAILOVER_ROUTES.events, {
      query: { type: 'region-health', limit: 500 },
    });
    // The events are a union by type: narrowing to region-health gives its fields.
    const down = page.items
      .flatMap((e) => (e.type === 'region-health' && e.region === region && e.to === 'down' ? [e] : []))
      .at(-1);
    if (!down) return '';
    const failing = down.failing.map((f) => `${f.check}: ${f.output ?? 'failing'}`);
    const errors = Object.entries(down.checkers).flatMap(([id, v]) =>
      v.error ? [`checker ${id}: ${v.error}`] : [],
    );
    return `: ${region} declared down (${down.cause}; ${[...failing, ...errors].join('; ') || 'no detail'})`;
  } catch {
    return '';
  }
}

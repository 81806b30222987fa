/**
 * `iotdr drill`: the whole platform from a fresh state directory (regions with fault injection,
 * control, analytics), a simulated fleet, a real fault in the primary, and the cost measured —
 * each RTO factor from the controller's decision log, every device's reconnection, and the RPO
 * (messages accepted by devices vs delivered to analytics, registry changes, commands).
 */
import { Api, baseUrl, IotdrError } from '../common/index.js';
import type { IotdrConfig, RegionConfig } from '../config/index.js';
import { controlUrlOf } from '../control.js';
import {
  type DeviceRecord,
  type Fleet,
  launchFleet,
  platformCredentials,
  regionApis,
  summaryLine,
} from '../fleet/index.js';
import { type RunningPlatform, startPlatform } from '../platform.js';
import type { DrillFault } from './faults.js';
import { type DrillReport, percentile, type SwitchMeasure } from './report.js';

export interface DrillOptions {
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
  failback: boolean;
  /** Messages per second of the whole fleet. Default: one per device per second. */
  ratePerSecond?: number;
  /** How long devices may take to come back after the fault before the drill gives up, ms. */
  recoveryTimeoutMs?: number;
  /** A line of progress for the terminal. */
  onProgress?: (line: string) => void;
}

/** Registry changes made in the primary just before the fault. */
const REGISTRY_CHANGES = 20;
/** Commands sent through command and control just before the fault. */
const COMMANDS = 10;

export async function runDrill(options: DrillOptions): Promise<DrillReport> {
  const { config, stateDir } = options;
  const progress = options.onProgress ?? (() => {});
  const [primary, secondary] = [...config.regions].sort((a, b) => a.priority - b.priority);
  if (!primary || !secondary) throw new IotdrError('IOTDR_DRILL_CONFIG', 'a drill needs two regions');

  progress(
    `starting ${config.regions.map((r) => r.name).join(', ')}, control and analytics (fault injection on)`,
  );
  const platform = await startPlatform({
    config,
    stateDir,
    ...(options.configFile ? { configFile: options.configFile } : {}),
    env: options.env,
    cwd: options.cwd,
    faults: true,
    onReady: (p) => progress(`  ${p.what} ready`),
  });
  let fleet: Fleet | undefined;
  try {
    const { token, caPem } = await platformCredentials(stateDir);
    const api = (r: RegionConfig) => regionApis(r, token, caPem).api;
    const cnc = (r: RegionConfig) => regionApis(r, token, caPem).cnc;
    const control = new Api('control', controlUrlOf(config), token);
    const analytics = new Api('analytics', baseUrl(config.analytics.address, config.analytics.port), token);

    await until(
      async () => {
        const s = (await control.call('GET', '/v1/failover/state')) as {
          activeRegion: string;
          mode: { type: string };
        };
        return s.mode.type === 'health' && s.activeRegion === primary.name;
      },
      60_000,
      `the controller following health with ${primary.name} active`,
    );

    progress(`onboarding ${options.devices} devices (${options.auth}) through command and control`);
    const launched = await launchFleet({
      config,
      stateDir,
      count: options.devices,
      prefix: 'drill',
      auth: options.auth,
      region: primary,
      ...(options.ratePerSecond === undefined ? {} : { ratePerSecond: options.ratePerSecond }),
      onProgress: (done, total, phase) => progress(`  ${phase} ${done}/${total}`),
    });
    fleet = launched.fleet;
    const devices = launched.devices;
    const f = fleet;
    const steady = (await control.call('GET', '/v1/failover/state')) as { epoch: number };
    // Nothing may have moved the fleet before the fault: that drill would measure nothing.
    const stillSteady = async (): Promise<true> => {
      const s = (await control.call('GET', '/v1/failover/state')) as { epoch: number; activeRegion: string };
      if (s.epoch !== steady.epoch || s.activeRegion !== primary.name)
        throw new IotdrError(
          'IOTDR_DRILL_NOT_STEADY',
          `the controller moved the fleet to ${s.activeRegion} before the fault (epoch ${s.epoch}); see ${platform.logDir}/control.log`,
        );
      return true;
    };
    progress('waiting for every device to publish through the primary');
    await until(
      async () =>
        (await stillSteady()) &&
        f.records().length === devices.length &&
        f.records().every((r) => r.region === primary.name && r.firstAckAt !== null),
      120_000,
      `every device publishing through ${primary.name}`,
      () => summaryOf(f),
    );

    // The fleet's own reconnect time, no failover: every device dropped and back on the same region.
    progress('measuring the fleet’s own reconnect time (all devices disconnected, no failover)');
    const ownStart = Date.now();
    await api(primary).call('POST', '/v1/connections/disconnect', { body: { all: true } });
    await until(
      async () =>
        (await stillSteady()) &&
        f
          .records()
          .every(
            (r) => r.region === primary.name && (r.reconnectedAt ?? 0) >= ownStart && r.firstAckAt !== null,
          ),
      120_000,
      'every device back after the disconnect',
      () => summaryOf(f),
    );
    const ownReconnectMs = Math.max(...f.records().map((r) => (r.firstAckAt ?? ownStart) - ownStart));

    // What must survive the fault: registry changes and commands made just before it.
    const changeNames = Array.from({ length: REGISTRY_CHANGES }, (_, i) => `drill-change-${i + 1}`);
    for (const name of changeNames)
      await api(primary).call('PUT', `/v1/things/${name}`, {
        body: { attributes: { drill: 'before-fault' } },
      });
    const commandIds: string[] = [];
    for (let i = 0; i < Math.min(COMMANDS, devices.length); i++) {
      const sent = (await cnc(primary).call('POST', `/v1/devices/${devices[i]?.thingName}/commands`, {
        body: { name: 'drill-ping', timeoutMs: 120_000, maxAttempts: 5 },
      })) as { commandId: string };
      commandIds.push(sent.commandId);
    }

    await stillSteady();
    const switched = await faultAndSwitch({
      fault: options.fault,
      from: primary,
      to: secondary,
      epoch: steady.epoch,
      inject: () => inject(options.fault, primary, platform, api(primary), analytics),
      control,
      fleet: f,
      timeoutMs: options.recoveryTimeoutMs ?? 180_000,
      progress,
    });

    // RPO: stop new messages, let every queue drain, bring the primary back if it is down so that
    // analytics reads what its bus kept, and compare.
    progress('settling: publishing paused, queues draining');
    f.pause();
    await until(
      async () => f.summary().queued === 0,
      60_000,
      'every device queue empty',
      () => summaryOf(f),
    );
    if (options.fault === 'region-crash' || options.fault === 'broker-crash') {
      progress(`restarting ${primary.name} so analytics can read what its bus kept`);
      await platform.restart(primary.name);
    } else if (options.fault === 'analytics-unhealthy') {
      await analytics.call('POST', `/v1/ingest/${primary.name}/resume`);
    } else {
      await api(primary).call('DELETE', `/v1/faults/${options.fault}`);
    }
    const accepted = f.records().reduce((n, r) => n + r.accepted, 0);
    let totals = { messages: 0, duplicates: 0, devicesWithGaps: 0, missing: 0 };
    await until(
      async () => {
        totals = (await analytics.call('GET', '/v1/totals')) as typeof totals;
        return totals.messages >= accepted;
      },
      60_000,
      'analytics holding every accepted message',
      () => `${totals.messages}/${accepted} delivered`,
    ).catch(() => undefined);
    const missingChanges: string[] = [];
    for (const name of changeNames) {
      try {
        await api(secondary).call('GET', `/v1/things/${name}`);
      } catch {
        missingChanges.push(name);
      }
    }
    let lostCommands = 0;
    for (const id of commandIds) {
      const c = (await cnc(secondary).call('GET', `/v1/commands/${id}`)) as { state: string };
      if (c.state !== 'succeeded') lostCommands++;
    }

    let failback: SwitchMeasure | undefined;
    if (options.failback) {
      progress(`failing back to ${primary.name}`);
      f.resume();
      await until(
        async () => {
          const s = (await control.call('GET', '/v1/failover/state')) as { failbackAvailable: string | null };
          return s.failbackAvailable === primary.name;
        },
        120_000,
        `${primary.name} healthy again`,
      );
      const state = (await control.call('GET', '/v1/failover/state')) as { epoch: number };
      failback = await faultAndSwitch({
        fault: 'failback',
        from: secondary,
        to: primary,
        epoch: state.epoch,
        inject: async () => {
          await control.call('POST', '/v1/failover/failback', { body: { reason: 'drill failback' } });
          return Date.now();
        },
        control,
        fleet: f,
        timeoutMs: options.recoveryTimeoutMs ?? 180_000,
        progress,
      });
      f.pause();
      await until(
        async () => f.summary().queued === 0,
        60_000,
        'every device queue empty after failback',
      ).catch(() => undefined);
    }

    const f2 = config.failover;
    const predictedRtoMs = f2.intervalMs * f2.failureThreshold + f2.timeoutMs + config.dns.ttl * 1000;
    const limitMs = f2.intervalMs * f2.failureThreshold + ownReconnectMs;
    return {
      fault: options.fault,
      devices: devices.length,
      auth: options.auth,
      ...switched,
      ownReconnectMs,
      limitMs,
      predictedRtoMs,
      messages: {
        accepted,
        delivered: totals.messages,
        lost: Math.max(0, accepted - totals.messages),
        duplicated: totals.duplicates,
        devicesWithGaps: totals.devicesWithGaps,
      },
      registry: { changesBeforeFault: changeNames.length, missingInSecondary: missingChanges.length },
      commands: { issuedBeforeFault: commandIds.length, lost: lostCommands },
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
    await fleet?.stop();
    await platform.stop();
  }
}

/** Makes the fault for real; resolves with when it was made. */
async function inject(
  fault: DrillFault,
  primary: RegionConfig,
  platform: RunningPlatform,
  api: Api,
  analytics: Api,
): Promise<number> {
  const at = Date.now();
  if (fault === 'region-crash') await platform.kill(primary.name, 'SIGKILL');
  else if (fault === 'analytics-unhealthy')
    await analytics.call('POST', `/v1/ingest/${primary.name}/stop`, { body: { reason: 'drill' } });
  else await api.call('POST', `/v1/faults/${fault}`);
  return at;
}

interface SwitchInput {
  fault: DrillFault | 'failback';
  from: RegionConfig;
  to: RegionConfig;
  epoch: number;
  inject: () => Promise<number>;
  control: Api;
  fleet: Fleet;
  timeoutMs: number;
  progress: (line: string) => void;
}

/** Injects, then waits for the switch and for every device publishing through the new region. */
async function faultAndSwitch(input: SwitchInput): Promise<SwitchMeasure> {
  const { fleet, control, progress } = input;
  progress(
    `${input.fault}: ${input.fault === 'failback' ? 'routing control' : 'fault injected'} in ${input.from.name}`,
  );
  const faultAt = await input.inject();
  let timings: Record<string, number | null> = {};
  await until(
    async () => {
      const s = (await control.call('GET', '/v1/failover/state')) as {
        epoch: number;
        activeRegion: string;
        lastSwitch: { timings: Record<string, number | null> } | null;
      };
      if (s.epoch <= input.epoch || s.activeRegion !== input.to.name || !s.lastSwitch) return false;
      timings = s.lastSwitch.timings;
      return true;
    },
    input.timeoutMs,
    `the controller moving the fleet to ${input.to.name}`,
  );
  progress(`  decided after ${(timings.decidedAt ?? faultAt) - faultAt} ms; waiting for the devices`);
  const onNew = (r: DeviceRecord) =>
    r.region === input.to.name && r.firstAckAt !== null && (r.reconnectedAt ?? 0) >= faultAt;
  const deadline = Date.now() + input.timeoutMs;
  let last = 0;
  while (Date.now() < deadline && !fleet.records().every(onNew)) {
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
  const state = (await control.call('GET', '/v1/failover/state')) as {
    lastSwitch: { timings: Record<string, number | null> } | null;
  };
  timings = state.lastSwitch?.timings ?? timings;
  const rel = (at: number | null | undefined) => (at === null || at === undefined ? null : at - faultAt);
  return {
    from: input.from.name,
    to: input.to.name,
    reconnected: moved.length,
    rtoMs: moved.length === records.length ? Math.max(0, ...publishing) : null,
    detectionMs: rel(timings.decidedAt),
    dnsSwitchMs: rel(timings.dnsUpdatedAt),
    factors: {
      firstFailedProbeMs: rel(timings.firstFailedProbeAt),
      thresholdCrossedMs: rel(timings.thresholdCrossedAt),
      decidedMs: rel(timings.decidedAt),
      dnsUpdatedMs: rel(timings.dnsUpdatedAt),
      noticesPublishedMs: rel(timings.noticesPublishedAt),
      disconnectsRequestedMs: rel(timings.disconnectsRequestedAt),
    },
    reconnectMs: {
      p50: percentile(reconnects, 50),
      p95: percentile(reconnects, 95),
      p99: percentile(reconnects, 99),
      max: reconnects.at(-1) ?? null,
    },
  };
}

function summaryOf(fleet: Fleet): string {
  return summaryLine(fleet.summary());
}

async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  status?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      // The drill's own verdicts end the wait; anything else is "not yet" (a process restarting).
      if (error instanceof IotdrError && error.code.startsWith('IOTDR_DRILL_')) throw error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new IotdrError(
    'IOTDR_DRILL_TIMEOUT',
    `timed out after ${timeoutMs} ms waiting for ${what}${status ? ` (${status()})` : ''}`,
  );
}

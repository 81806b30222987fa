import { IotdrError } from '../../common/index.js';
import type { LoadedConfig } from '../../config/index.js';
import { controlUrlOf } from '../../config/index.js';
import type { FailoverState, RegionHealth, SwitchEvent } from '../../failover/index.js';
import { Api, apiOf, table } from '../api.js';
import { loadFor, parseCommand } from '../args.js';
import type { CliIo, Command } from '../io.js';

/** The control API with the admin token (the same state directory as the regions). */
async function controlApi(loaded: LoadedConfig): Promise<Api> {
  const first = loaded.config.regions[0];
  if (!first) throw new IotdrError('IOTDR_CLI_NO_REGION', 'the configuration has no region');
  const region = await apiOf(loaded, first);
  return new Api('control', controlUrlOf(loaded.config), region.token);
}

async function run(name: string, io: CliIo, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof IotdrError) {
      io.err(`iotdr ${name}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

const FAILOVER_USAGE = `usage: iotdr failover --to REGION --reason TEXT [--config FILE]

Moves the fleet to REGION now, whatever its health (a routing control, recorded with who and why),
and keeps it there until 'iotdr failback' or the override is cleared.`;

export const failoverCommand: Command = async (argv, io) => {
  const values = parseCommand(
    'failover',
    FAILOVER_USAGE,
    argv,
    { to: { type: 'string' }, reason: { type: 'string' } },
    io,
  );
  if (typeof values === 'number') return values;
  const { to, reason } = values;
  if (typeof to !== 'string' || typeof reason !== 'string' || reason.trim() === '') {
    io.err('iotdr failover: --to and a non-empty --reason are required');
    io.err(FAILOVER_USAGE);
    return 2;
  }
  return run('failover', io, async () => {
    const api = await controlApi(await loadFor(io, values));
    await api.call('POST', '/v1/failover/switch', { body: { to, reason } });
    io.out(`iotdr failover: the fleet goes to ${to}`);
    return printState(io, (await api.call('GET', '/v1/failover/state')) as FailoverState);
  });
};

const FAILBACK_USAGE = `usage: iotdr failback --reason TEXT [--config FILE]

Clears any routing control and moves the fleet back to the highest-priority healthy region.`;

export const failbackCommand: Command = async (argv, io) => {
  const values = parseCommand('failback', FAILBACK_USAGE, argv, { reason: { type: 'string' } }, io);
  if (typeof values === 'number') return values;
  const { reason } = values;
  if (typeof reason !== 'string' || reason.trim() === '') {
    io.err('iotdr failback: a non-empty --reason is required');
    io.err(FAILBACK_USAGE);
    return 2;
  }
  return run('failback', io, async () => {
    const api = await controlApi(await loadFor(io, values));
    await api.call('POST', '/v1/failover/failback', { body: { reason } });
    return printState(io, (await api.call('GET', '/v1/failover/state')) as FailoverState);
  });
};

const STATUS_USAGE = `usage: iotdr status [--json] [--config FILE]

The fleet at a glance: every region with its health per component and replication lag, the active
region, the epoch, and the last switch with the time of each of its steps.`;

export const statusCommand: Command = async (argv, io) => {
  const values = parseCommand('status', STATUS_USAGE, argv, { json: { type: 'boolean' } }, io);
  if (typeof values === 'number') return values;
  const { json } = values;
  return run('status', io, async () => {
    const loaded = await loadFor(io, values);
    const state = (await (await controlApi(loaded)).call('GET', '/v1/failover/state')) as FailoverState;
    // Replication lag as each region sees its links; a region that does not answer shows '?'.
    const lag = new Map<string, string>();
    await Promise.all(
      loaded.config.regions.map(async (region) => {
        try {
          const status = (await (
            await apiOf(loaded, region)
          ).call('GET', '/v1/replication/status', {
            timeoutMs: 2000,
          })) as { links: Array<{ peer: string; lagMs: number | null; lagChanges: number | null }> };
          lag.set(
            region.name,
            status.links
              .map((l) => `${l.peer} ${l.lagChanges ?? '-'} changes, ${l.lagMs ?? '-'} ms`)
              .join(', ') || '-',
          );
        } catch {
          lag.set(region.name, '?');
        }
      }),
    );
    if (json) {
      io.out(JSON.stringify({ ...state, replicationLag: Object.fromEntries(lag) }, null, 2));
      return 0;
    }
    return printState(io, state, lag);
  });
};

function printState(io: CliIo, state: FailoverState, lag?: Map<string, string>): number {
  const mode =
    state.mode.type === 'override'
      ? `override to ${state.mode.override.region} by ${state.mode.override.who}: ${state.mode.override.reason}`
      : state.mode.type;
  io.out(`active region  ${state.activeRegion} (epoch ${state.epoch}, ${mode}, failback ${state.failback})`);
  if (state.noHealthyRegion) io.out(`WARNING        no region is healthy: keeping ${state.activeRegion}`);
  if (state.failbackAvailable)
    io.out(`failback       ${state.failbackAvailable} is healthy again: 'iotdr failback'`);
  io.out(`checkers       ${state.checkers.join(', ')} (quorum ${state.quorum})`);
  io.out('');
  const header = ['region', 'priority', 'health', 'failing', ...(lag ? ['replication lag'] : [])];
  const rows = state.regions.map((r) => [
    `${r.region}${r.region === state.activeRegion ? ' *' : ''}`,
    String(r.priority),
    healthText(r, Date.now()),
    r.failingComponents.join(', ') || '-',
    ...(lag ? [lag.get(r.region) ?? '?'] : []),
  ]);
  for (const line of table([header, ...rows])) io.out(line);
  if (state.lastSwitch) {
    io.out('');
    for (const line of switchLines(state.lastSwitch)) io.out(line);
  }
  return 0;
}

/**
 * A region's health as the table shows it: a degraded region (slow, not down) says for how long,
 * its worst latency, and how long is left before it is moved.
 */
function healthText(r: RegionHealth, now: number): string {
  if (!r.degraded) return r.status;
  const d = r.degraded;
  const seconds = (ms: number) => `${Math.max(0, Math.round(ms / 1000))} s`;
  return `${r.status}, degraded ${seconds(now - d.since)} (${Math.round(d.latencyMs)} ms; moved in ${seconds(d.budgetEndsAt - now)} if it lasts)`;
}

/** The last switch and its RTO factors, in ms from the first failed probe (or the decision). */
function switchLines(event: SwitchEvent): string[] {
  const t = event.timings;
  const origin = t.firstFailedProbeAt ?? t.decidedAt;
  const at = (v: number | null) => (v === null ? '-' : `+${v - origin} ms`);
  return [
    `last switch    ${event.from ?? '-'} → ${event.to} (epoch ${event.epoch}, ${event.trigger.type}) at ${new Date(event.at).toISOString()}`,
    ...table([
      ['step', 'time'],
      ['first failed probe', at(t.firstFailedProbeAt)],
      ['threshold crossed', at(t.thresholdCrossedAt)],
      ['decision', at(t.decidedAt)],
      ['DNS answers changed', at(t.dnsUpdatedAt)],
      ['notices published', at(t.noticesPublishedAt)],
      ['webhooks called', at(t.webhooksCalledAt)],
      ['disconnects requested', at(t.disconnectsRequestedAt)],
    ]).map((line) => `  ${line}`),
  ];
}

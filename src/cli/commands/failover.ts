import { IotdrError } from '../../common/index.js';
import type { LoadedConfig } from '../../config/index.js';
import { controlNodesOf } from '../../config/index.js';
import {
  ControlClient,
  FAILOVER_ROUTES,
  type FailoverState,
  type RegionHealth,
  type SwitchEvent,
} from '../../failover/index.js';
import { adminToken, platformCa, table } from '../api.js';
import { loadFor, parseCommand, usageError } from '../args.js';
import type { CliIo, Command } from '../io.js';

/**
 * The control API at every control node, with the admin token (the same state directory as the
 * regions): a node that is down is passed over for the next.
 */
async function controlApi(loaded: LoadedConfig): Promise<ControlClient> {
  if (loaded.config.regions.length === 0)
    throw new IotdrError('IOTDR_CLI_NO_REGION', 'the configuration has no region');
  const ca = await platformCa(loaded);
  return new ControlClient(
    controlNodesOf(loaded.config).map((node) => ({
      name: node.name,
      url: node.url,
      ...(ca === undefined ? {} : { trust: ca }),
    })),
    await adminToken(loaded),
  );
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

const FAILOVER = {
  name: 'failover',
  usage: FAILOVER_USAGE,
  options: { to: { type: 'string' }, reason: { type: 'string' } },
} as const;

export const failoverCommand: Command = async (argv, io) => {
  const parsed = parseCommand(FAILOVER, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const { to, reason } = values;
  if (to === undefined || reason === undefined || reason.trim() === '')
    return usageError(FAILOVER, io, '--to and a non-empty --reason are required');
  return run('failover', io, async () => {
    const api = await controlApi(await loadFor(io, values));
    // The state in the answer is the leader's, as committed: a node that relayed it may not have it yet.
    const { state } = await api.request(FAILOVER_ROUTES.switch, { body: { to, reason } });
    io.out(`iotdr failover: the fleet goes to ${to}`);
    return printState(io, state);
  });
};

const FAILBACK_USAGE = `usage: iotdr failback --reason TEXT [--config FILE]

Clears any routing control and moves the fleet back to the highest-priority healthy region.`;

const FAILBACK = {
  name: 'failback',
  usage: FAILBACK_USAGE,
  options: { reason: { type: 'string' } },
} as const;

export const failbackCommand: Command = async (argv, io) => {
  const parsed = parseCommand(FAILBACK, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const { reason } = values;
  if (reason === undefined || reason.trim() === '')
    return usageError(FAILBACK, io, 'a non-empty --reason is required');
  return run('failback', io, async () => {
    const api = await controlApi(await loadFor(io, values));
    const { state } = await api.request(FAILOVER_ROUTES.failback, { body: { reason } });
    return printState(io, state);
  });
};

/** The state as `iotdr failover`, `failback` and `status` print it; the replication lag when given. */
export function printState(io: CliIo, state: FailoverState, lag?: Map<string, string>): number {
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

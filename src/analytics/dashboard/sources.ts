import type { Agent } from 'node:https';
/**
 * Reads of the other processes the live view shows: the controller's state, and each region's
 * /health, sessions and replication links. Every answer is outside input, so it is parsed with a
 * schema; a source that fails becomes an error string in the snapshot, never an exception.
 */
import { z } from 'zod';
import type { ControlClient } from '../../failover/index.js';
import { type RawAnswer, sendRequest } from '../../http/index.js';
import type {
  ActiveView,
  CheckStatus,
  RegionHealthView,
  ReplicationLinkView,
  SwitchView,
} from './snapshot.js';

const checkStatus = z.enum(['pass', 'warn', 'fail']);

const switchEventSchema = z
  .object({
    type: z.literal('switch'),
    seq: z.number().int(),
    at: z.number(),
    from: z.string().nullable(),
    to: z.string(),
    epoch: z.number().int(),
    trigger: z
      .object({ type: z.string(), who: z.string().optional(), reason: z.string().optional() })
      .loose(),
    timings: z.record(z.string(), z.number().nullable()),
  })
  .loose();

const controlStateSchema = z
  .object({
    activeRegion: z.string(),
    epoch: z.number().int(),
    decidedAt: z.number(),
    mode: z.object({ type: z.string() }).loose(),
    noHealthyRegion: z.boolean(),
    failbackAvailable: z.string().nullable(),
    regions: z.array(
      z
        .object({
          region: z.string(),
          status: z.enum(['unknown', 'up', 'down']),
          degraded: z.object({ since: z.number() }).loose().nullable().optional(),
        })
        .loose(),
    ),
    lastSwitch: switchEventSchema.nullable(),
  })
  .loose();

const healthSchema = z
  .object({
    status: checkStatus,
    output: z.string().optional(),
    checks: z
      .record(z.string(), z.array(z.object({ status: checkStatus }).loose()))
      .optional()
      .default({}),
  })
  .loose();

const connectionsSchema = z.object({ items: z.array(z.unknown()) }).loose();

const replicationSchema = z
  .object({
    links: z.array(
      z
        .object({
          peer: z.string(),
          state: z.object({ type: z.string() }).loose(),
          lagChanges: z.number().nullable(),
          lagMs: z.number().nullable(),
        })
        .loose(),
    ),
  })
  .loose();

export interface ControlRead {
  active: ActiveView;
  /** The controller's verdict; `degraded`: up, but a quorum of checkers sees it slow (not moved unless it lasts). */
  regionStatus: Record<string, 'up' | 'down' | 'unknown' | 'degraded'>;
  lastSwitch: SwitchView | null;
}

/**
 * How analytics reads another process: with its site agent over mutual TLS (the peer knows it by
 * its certificate), or with the analytics token on plain loopback links.
 */
export interface PeerAccess {
  token?: string;
  agent?: Agent;
}

/** One GET with a timeout; answers the parsed JSON of an accepted status, or throws with why. */
async function getJson(
  url: string,
  options: { access?: PeerAccess; timeoutMs: number; accept?: readonly number[] },
): Promise<unknown> {
  const { token, agent } = options.access ?? {};
  // AbortSignal.timeout bounds a hung peer; the poll intervals themselves use the injected timers.
  const res = await sendRequest(url, {
    method: 'GET',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(agent === undefined ? {} : { trust: agent }),
    signal: AbortSignal.timeout(options.timeoutMs),
  });
  return jsonOf(res, options.accept ?? [200]);
}

/** The parsed JSON of an answer of an accepted status; else throws with the status and code. */
function jsonOf(res: RawAnswer, accept: readonly number[]): unknown {
  const text = res.text;
  if (!accept.includes(res.status)) {
    let code = '';
    try {
      code = String((JSON.parse(text) as { code?: unknown }).code ?? '');
    } catch {
      code = '';
    }
    throw new Error(`${res.status}${code ? ` ${code}` : ''}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${res.status} with a body that is not JSON`);
  }
}

/** Why a read failed, in a line the page can show. */
export function describeFailure(error: unknown): string {
  if (error instanceof z.ZodError) return `unexpected answer: ${error.issues[0]?.message ?? 'invalid'}`;
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return 'timed out';
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    if (cause && typeof cause.code === 'string') return `request failed: ${cause.code}`;
    return error.message;
  }
  return String(error);
}

export function switchView(event: z.infer<typeof switchEventSchema>): SwitchView {
  const { trigger } = event;
  return {
    seq: event.seq,
    at: event.at,
    from: event.from,
    to: event.to,
    epoch: event.epoch,
    trigger: trigger.type,
    ...(trigger.who === undefined ? {} : { who: trigger.who }),
    ...(trigger.reason === undefined ? {} : { reason: trigger.reason }),
    timings: { ...event.timings },
  };
}

/** A mirrored decision-log entry as a switch, or undefined when it is not a well-formed switch. */
export function parseSwitch(event: Record<string, unknown>): SwitchView | undefined {
  const parsed = switchEventSchema.safeParse(event);
  return parsed.success ? switchView(parsed.data) : undefined;
}

/**
 * GET /v1/failover/state of whichever control node answers (analytics' site certificate, or a
 * reader token): every node serves the same committed decision.
 */
export async function readControl(control: ControlClient, timeoutMs: number): Promise<ControlRead> {
  const state = controlStateSchema.parse(
    jsonOf(await control.send({ method: 'GET', path: '/v1/failover/state', timeoutMs }), [200]),
  );
  return {
    active: {
      region: state.activeRegion,
      epoch: state.epoch,
      mode: state.mode.type,
      noHealthyRegion: state.noHealthyRegion,
      decidedAt: state.decidedAt,
      failbackAvailable: state.failbackAvailable,
    },
    regionStatus: Object.fromEntries(
      state.regions.map((r) => [r.region, r.status !== 'down' && r.degraded ? 'degraded' : r.status]),
    ),
    lastSwitch: state.lastSwitch ? switchView(state.lastSwitch) : null,
  };
}

const RANK: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 };

/** GET /health (public; the agent verifies the region over HTTPS): 200 and 503 both carry the answer. */
export async function readHealth(
  regionUrl: string,
  access: PeerAccess,
  timeoutMs: number,
  now: number,
): Promise<RegionHealthView> {
  const health = healthSchema.parse(
    await getJson(`${regionUrl}/health`, {
      access: access.agent === undefined ? {} : { agent: access.agent },
      timeoutMs,
      accept: [200, 503],
    }),
  );
  const components: Record<string, CheckStatus> = {};
  for (const [key, checks] of Object.entries(health.checks)) {
    const component = key.split(':')[0] ?? key;
    for (const check of checks) {
      const seen = components[component];
      if (seen === undefined || RANK[check.status] > RANK[seen]) components[component] = check.status;
    }
  }
  return {
    status: health.status,
    components,
    ...(health.output === undefined ? {} : { output: health.output }),
    checkedAt: now,
  };
}

/** GET /v1/connections (analytics' site certificate, or a reader token): live device sessions. */
export async function readConnected(
  regionUrl: string,
  access: PeerAccess,
  timeoutMs: number,
): Promise<number> {
  return connectionsSchema.parse(await getJson(`${regionUrl}/v1/connections`, { access, timeoutMs })).items
    .length;
}

/** GET /v1/replication/status (analytics' site certificate, or a reader token). */
export async function readReplication(
  regionUrl: string,
  access: PeerAccess,
  timeoutMs: number,
): Promise<ReplicationLinkView[]> {
  const status = replicationSchema.parse(
    await getJson(`${regionUrl}/v1/replication/status`, { access, timeoutMs }),
  );
  return status.links.map((l) => ({
    peer: l.peer,
    state: l.state.type,
    lagChanges: l.lagChanges,
    lagMs: l.lagMs,
  }));
}

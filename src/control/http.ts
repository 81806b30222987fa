/**
 * GET /v1/control/etcd: the etcd cluster as a control node sees it, member by member — whether its
 * /health answers, and from its own maintenance status (etcd's HTTP gateway, POST
 * /v3/maintenance/status, which the member answers for itself rather than for the cluster) the raft
 * leader it follows, the raft term, its database size and its version. `iotdr status` prints it.
 */
import type { Agent } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { defineRoute, problemAnswers, type RawAnswer, READ, routeOf, sendRequest } from '../http/index.js';
import type { EtcdMemberConfig } from './config.js';
import { etcdClientUrl } from './etcd.js';

/** How long one member has to answer its /health and its status, ms. */
const ETCD_PROBE_TIMEOUT_MS = 2000;

/** Longest part of a member's refusal kept in its error, characters. */
const EXCERPT_CHARS = 200;

const memberSchema = z.object({
  name: z.string(),
  url: z.string(),
  healthy: z.boolean().describe("the member's /health said true: it has a leader and a quorum read passed"),
  status: z
    .object({
      memberId: z.string().describe('hex'),
      leader: z
        .string()
        .nullable()
        .describe('the member the raft leader is, by name (its hex id if unknown); null: none'),
      raftTerm: z.number().int(),
      raftIndex: z.number().int(),
      dbSizeBytes: z.number().int(),
      version: z.string(),
    })
    .nullable()
    .describe("the member's own maintenance status; null when it did not answer"),
  error: z.string().nullable().describe('why it is not healthy, or why its status is missing'),
});

export type EtcdMemberView = z.output<typeof memberSchema>;

export const CONTROL_ROUTES = {
  etcd: defineRoute({
    method: 'GET',
    url: '/v1/control/etcd',
    tags: ['control'],
    description:
      'The etcd members of control.etcd as this control node reaches them: health, raft leader and term, database size, version. Empty without control nodes.',
    responses: { 200: z.object({ members: z.array(memberSchema) }), ...problemAnswers(401, 403) },
  }),
} as const;

/** What etcd's gateway answers for a status: 64-bit numbers as decimal strings, zeros left out. */
const gatewayStatus = z.object({
  header: z.object({ member_id: z.string() }),
  version: z.string(),
  dbSize: z.string().default('0'),
  leader: z.string().default('0'),
  raftIndex: z.string().default('0'),
  raftTerm: z.string().default('0'),
});

function hex(decimal: string): string {
  return BigInt(decimal).toString(16);
}

/** ECONNREFUSED, a TLS code…: what the system says, or the message. */
function why(error: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `no answer within ${timeoutMs} ms`;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : ((error as Error | undefined)?.message ?? String(error));
}

/** An answer that is not the one hoped for: its status and the start of its body. */
function refused(answer: RawAnswer): string {
  return `HTTP ${answer.status} ${answer.text.trim().slice(0, EXCERPT_CHARS)}`.trimEnd();
}

/** One member's health and status, side by side; its leader still as an id. */
async function probe(
  member: EtcdMemberConfig,
  agent: Agent | undefined,
  timeoutMs: number,
): Promise<{ view: EtcdMemberView; leaderId: string | undefined }> {
  const url = etcdClientUrl(member.address, member.clientPort, agent !== undefined);
  const signal = AbortSignal.timeout(timeoutMs);
  const trust = agent === undefined ? {} : { trust: agent };
  const [health, status] = await Promise.allSettled([
    sendRequest(`${url}/health`, {
      method: 'GET',
      headers: { accept: 'application/json' },
      ...trust,
      signal,
    }),
    sendRequest(`${url}/v3/maintenance/status`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
      ...trust,
      signal,
    }),
  ]);
  let healthy = false;
  let healthError: string | undefined;
  if (health.status === 'rejected') healthError = why(health.reason, signal, timeoutMs);
  else {
    healthy = health.value.status === 200 && parsed(health.value.text)?.health === 'true';
    if (!healthy) healthError = refused(health.value);
  }
  let view: EtcdMemberView['status'] = null;
  let leaderId: string | undefined;
  let statusError: string | undefined;
  if (status.status === 'rejected') statusError = why(status.reason, signal, timeoutMs);
  else {
    const answer =
      status.value.status === 200 ? gatewayStatus.safeParse(parsed(status.value.text)) : undefined;
    if (answer?.success) {
      const s = answer.data;
      leaderId = s.leader === '0' ? undefined : hex(s.leader);
      view = {
        memberId: hex(s.header.member_id),
        leader: leaderId ?? null,
        raftTerm: Number(s.raftTerm),
        raftIndex: Number(s.raftIndex),
        dbSizeBytes: Number(s.dbSize),
        version: s.version,
      };
    } else statusError = refused(status.value);
  }
  // A member that is down fails both the same way: said once.
  const errors =
    healthError !== undefined && healthError === statusError
      ? [healthError]
      : [
          ...(healthError === undefined ? [] : [`health: ${healthError}`]),
          ...(statusError === undefined ? [] : [`status: ${statusError}`]),
        ];
  return {
    view: {
      name: member.name,
      url,
      healthy,
      status: view,
      error: errors.length > 0 ? errors.join('; ') : null,
    },
    leaderId,
  };
}

function parsed(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Asks every member at once; each leader id is named by the member whose own id it is. */
async function etcdMembersView(
  members: readonly EtcdMemberConfig[],
  agentFor: (member: string) => Agent | undefined,
  timeoutMs = ETCD_PROBE_TIMEOUT_MS,
): Promise<EtcdMemberView[]> {
  const probes = await Promise.all(members.map((m) => probe(m, agentFor(m.name), timeoutMs)));
  const names = new Map(
    probes.flatMap((p) => (p.view.status ? [[p.view.status.memberId, p.view.name]] : [])),
  );
  return probes.map(({ view, leaderId }) =>
    view.status && leaderId !== undefined
      ? { ...view, status: { ...view.status, leader: names.get(leaderId) ?? leaderId } }
      : view,
  );
}

/**
 * The route, for a control node's API. `agentFor` gives the agent that calls a member over mutual
 * TLS (the node's site certificate, checking the member's); undefined means plain HTTP.
 */
export function etcdRoutes(
  members: readonly EtcdMemberConfig[],
  agentFor: (member: string) => Agent | undefined,
) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(CONTROL_ROUTES.etcd),
      config: { roles: READ },
      handler: async () => ({ members: await etcdMembersView(members, agentFor) }),
    });
  };
}

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  changeSchema,
  entitySchema,
  problemSchema,
  READ,
  REPLICATE,
  type RegistryService,
  WRITE,
} from '../registry/index.js';
import type { Replication } from './manager.js';

const errors = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  404: problemSchema,
  503: problemSchema,
};
const regionName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a region name');

const linkStateSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('starting') }),
  z.object({ type: z.literal('bootstrapping'), copied: z.number().int(), watermark: z.number().int() }),
  z.object({ type: z.literal('tailing') }),
  z.object({ type: z.literal('retrying'), attempt: z.number().int(), nextAttemptAt: z.number() }),
  z.object({ type: z.literal('stopped') }),
]);
const linkStatusSchema = z
  .object({
    peer: z.string(),
    target: z.string(),
    state: linkStateSchema,
    cursor: z.number().int(),
    peerLastSeq: z.number().int().nullable(),
    lagChanges: z.number().int().nullable(),
    lagMs: z.number().nullable(),
    lastAppliedAt: z.number().nullable(),
    lastContactAt: z.number().nullable(),
    lastError: z.object({ message: z.string(), at: z.number() }).nullable(),
    applied: z.number().int(),
    stale: z.number().int(),
    deadLetters: z.number().int(),
  })
  .meta({ id: 'ReplicationLink' });
const deadLetterSchema = z
  .object({
    peer: z.string(),
    id: z.string(),
    seq: z.number().int(),
    change: changeSchema,
    reason: z.string(),
    at: z.number(),
    attempts: z.number().int(),
  })
  .meta({ id: 'DeadLetter' });

/** The snapshot a new or lagging peer copies: served by every region (replicator role). */
export function snapshotRoutes(service: RegistryService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/v1/snapshot', {
      config: { roles: REPLICATE },
      schema: {
        tags: ['replication'],
        description:
          "Every entity (tombstones too) in (kind, key) order, one page at a time, with the log's last seq read before the page: tail the change feed from the first page's lastSeq.",
        querystring: z
          .object({
            origin: regionName.optional().describe('only entities last written in this region'),
            afterKind: z.string().max(64).optional(),
            afterKey: z.string().max(512).optional(),
            limit: z.coerce.number().int().min(1).max(5000).default(1000),
          })
          .strict()
          .refine((q) => (q.afterKind === undefined) === (q.afterKey === undefined), {
            message: 'afterKind and afterKey go together',
          }),
        response: {
          200: z.object({
            entities: z.array(entitySchema),
            lastSeq: z.number().int(),
            next: z.object({ kind: z.string(), key: z.string() }).optional(),
          }),
          ...errors,
        },
      },
      handler: async (req) => {
        const lastSeq = await service.store.lastSeq();
        const after =
          req.query.afterKind !== undefined && req.query.afterKey !== undefined
            ? { kind: req.query.afterKind, key: req.query.afterKey }
            : undefined;
        const rows = await service.store.scan({
          limit: req.query.limit + 1,
          includeDeleted: true,
          ...(after ? { after } : {}),
          ...(req.query.origin === undefined ? {} : { origin: req.query.origin }),
        });
        const entities = rows.slice(0, req.query.limit);
        const last = entities[entities.length - 1];
        return rows.length > req.query.limit && last
          ? { entities, lastSeq, next: { kind: last.kind, key: last.key } }
          : { entities, lastSeq };
      },
    });
  };
}

/** Status and dead letters of this region's links. */
export function replicationRoutes(replication: Replication) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/v1/replication/status', {
      config: { roles: [...READ, ...REPLICATE] },
      schema: {
        tags: ['replication'],
        description:
          'Every link of this region: state, cursor, lag in changes and ms, last error, dead letters.',
        response: { 200: z.object({ region: z.string(), links: z.array(linkStatusSchema) }), ...errors },
      },
      handler: () => replication.status(),
    });
    app.get('/v1/replication/dead-letters', {
      config: { roles: READ },
      schema: {
        tags: ['replication'],
        querystring: z.object({ peer: regionName.optional() }).strict(),
        response: { 200: z.object({ items: z.array(deadLetterSchema) }), ...errors },
      },
      handler: async (req) => ({ items: await replication.target.deadLetters(req.query.peer) }),
    });
    const letterParams = z.object({ peer: regionName, id: z.string().min(1).max(700) }).strict();
    app.post('/v1/replication/dead-letters/:peer/:id/retry', {
      config: { roles: WRITE },
      schema: {
        tags: ['replication'],
        description:
          'Apply a dead-lettered change again; it leaves the dead letters unless it still cannot apply.',
        params: letterParams,
        response: { 200: z.object({ outcome: z.enum(['applied', 'stale', 'dead-letter']) }), ...errors },
      },
      handler: async (req) => ({
        outcome: await replication.target.retryDeadLetter(req.params.peer, req.params.id),
      }),
    });
    app.delete('/v1/replication/dead-letters/:peer/:id', {
      config: { roles: WRITE },
      schema: {
        tags: ['replication'],
        description: 'Discard a dead-lettered change.',
        params: letterParams,
        response: { 204: z.null(), ...errors },
      },
      handler: async (req, reply) => {
        await replication.target.discardDeadLetter(req.params.peer, req.params.id);
        return reply.code(204).send(null);
      },
    });
  };
}

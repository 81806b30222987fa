import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ADMIN, READ, REPLICATE, routeOf, WRITE } from '../http/index.js';
import { entitySchema, type RegistryService } from '../registry/index.js';
import { DEFAULT_SNAPSHOT_PAGE_SIZE, REPLICATION_LIMITS } from './config.js';
import { errors, REPLICATION_ROUTES, regionName } from './contracts.js';
import { bucketEntries, computeDigest } from './digest.js';
import { deadLetterNotFound } from './errors.js';
import type { Replication } from './manager.js';
import type { DeadLetter } from './types.js';

/**
 * Digests of the region's live entities, to compare regions cheaply (see digest.ts), and the
 * entries of one bucket to narrow a difference down to keys: for peers and admins only. They count
 * and list the keys of every kind, command-and-control documents included (onboarding jobs,
 * idempotency records, commands), which a reader is not shown elsewhere.
 */
export function digestRoutes(service: RegistryService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(REPLICATION_ROUTES.digest),
      config: { roles: ADMIN, sites: ['region'], linkRoles: REPLICATE },
      handler: async () => {
        const started = service.clock.now();
        const lastSeq = await service.store.lastSeq();
        const digest = await computeDigest(service.store, { kinds: service.kinds.names });
        const computedAt = service.clock.now();
        return {
          region: service.region,
          lastSeq,
          computedAt,
          durationMs: computedAt - started,
          ...digest,
        };
      },
    });
    app.route({
      ...routeOf(REPLICATION_ROUTES.bucket),
      config: { roles: ADMIN, sites: ['region'], linkRoles: REPLICATE },
      handler: async (req) => {
        const { kind, buckets } = req.params;
        const page = await bucketEntries(service.store, kind, buckets, {
          limit: req.query.limit,
          ...(req.query.after === undefined ? {} : { after: req.query.after }),
        });
        return { region: service.region, kind, buckets, ...page };
      },
    });
  };
}

/** The snapshot a new or lagging peer copies: served by every region (replicator role). */
export function snapshotRoutes(service: RegistryService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/v1/snapshot', {
      config: { sites: ['region'], linkRoles: REPLICATE },
      schema: {
        tags: ['replication'],
        description:
          "Every entity (tombstones too) in (kind, key) order, one page at a time, with the log's last seq read before the page: tail the change feed from the first page's lastSeq.",
        querystring: z
          .object({
            origin: regionName.optional().describe('only entities last written in this region'),
            afterKind: z.string().max(64).optional(),
            afterKey: z.string().max(512).optional(),
            limit: z.coerce
              .number()
              .int()
              .min(REPLICATION_LIMITS.snapshotPageSize.min)
              .max(REPLICATION_LIMITS.snapshotPageSize.max)
              .default(DEFAULT_SNAPSHOT_PAGE_SIZE),
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

/** A dead letter without its change's document. */
function summaryOf(letter: DeadLetter) {
  const { change, ...rest } = letter;
  return { ...rest, kind: change.kind, key: change.key, op: change.op, origin: change.origin };
}

/** Status and dead letters of this region's links. */
export function replicationRoutes(replication: Replication) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(REPLICATION_ROUTES.status),
      config: { roles: READ, sites: ['analytics'] },
      handler: () => replication.status(),
    });
    app.route({
      ...routeOf(REPLICATION_ROUTES.deadLetters),
      config: { roles: READ },
      // A change's document may hold secrets (a token's secretHash, a rule's webhook headers):
      // readers see what was refused and why, an admin asks for one letter to see the document.
      handler: async (req) => ({
        items: (await replication.target.deadLetters(req.query.peer)).map(summaryOf),
      }),
    });
    app.route({
      ...routeOf(REPLICATION_ROUTES.deadLetter),
      config: { roles: ADMIN },
      handler: async (req) => {
        const { peer, id } = req.params;
        const letter = (await replication.target.deadLetters(peer)).find((l) => l.id === id);
        if (!letter) throw deadLetterNotFound(peer, id);
        return letter;
      },
    });
    app.route({
      ...routeOf(REPLICATION_ROUTES.retryDeadLetter),
      config: { roles: WRITE },
      handler: async (req) => ({
        outcome: await replication.target.retryDeadLetter(req.params.peer, req.params.id),
      }),
    });
    app.route({
      ...routeOf(REPLICATION_ROUTES.discardDeadLetter),
      config: { roles: WRITE },
      handler: async (req, reply) => {
        await replication.target.discardDeadLetter(req.params.peer, req.params.id);
        return reply.code(204).send(null);
      },
    });
  };
}

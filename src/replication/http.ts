import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  changeSchema,
  ENTITY_KINDS,
  entitySchema,
  problemSchema,
  READ,
  REPLICATE,
  type RegistryService,
  WRITE,
} from '../registry/index.js';
import {
  bucketEntries,
  computeDigest,
  DEFAULT_BUCKET_LIMIT,
  DIGEST_ALGORITHM,
  DIGEST_BUCKETS,
  MAX_BUCKET_LIMIT,
} from './digest.js';
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

const hex256 = z.string().regex(/^[0-9a-f]{64}$/);
const kindDigestSchema = z
  .object({
    kind: z.string(),
    count: z.number().int().describe('live entities of the kind'),
    digest: hex256.describe('sum of the bucket digests modulo 2^256'),
    buckets: z
      .array(hex256)
      .length(DIGEST_BUCKETS)
      .describe('digest per bucket (first byte of SHA-256 of the key), indexed 0-255'),
  })
  .meta({ id: 'KindDigest' });
const digestEntrySchema = z
  .object({
    key: z.string(),
    bucket: z.number().int(),
    version: z.number().int(),
    hlc: z.object({ wall: z.number().int(), counter: z.number().int() }),
    origin: z.string(),
  })
  .meta({ id: 'DigestEntry' });

/**
 * Digests of the region's live entities, to compare regions cheaply (see digest.ts), and the
 * entries of one bucket to narrow a difference down to keys (reader or replicator role).
 */
export function digestRoutes(service: RegistryService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/v1/replication/digest', {
      config: { roles: [...READ, ...REPLICATE] },
      schema: {
        tags: ['replication'],
        description: `Per kind: the number of live entities, the digest of their (kind, key, version, hlc, origin) and ${DIGEST_BUCKETS} bucket digests. Digest = sum modulo 2^256 of SHA-256 of each entity's JSON array [kind, key, version, hlc.wall, hlc.counter, origin]. Reads every entity: seconds for a million.`,
        response: {
          200: z.object({
            region: z.string(),
            algorithm: z.literal(DIGEST_ALGORITHM),
            lastSeq: z.number().int().describe("the change log's last seq before the scan began"),
            computedAt: z.number(),
            durationMs: z.number(),
            kinds: z.array(kindDigestSchema),
          }),
          ...errors,
        },
      },
      handler: async () => {
        const started = service.clock.now();
        const lastSeq = await service.store.lastSeq();
        const digest = await computeDigest(service.store, { kinds: ENTITY_KINDS });
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
    app.get('/v1/replication/digest/:kind/:buckets', {
      config: { roles: [...READ, ...REPLICATE] },
      schema: {
        tags: ['replication'],
        description:
          "The live entities of one bucket of a kind, or of several (comma-separated: 3,17,200), in key order: (key, bucket, version, hlc, origin). Reads the whole kind, so ask for every bucket you need at once. Page with `after` = the answer's `next`.",
        params: z
          .object({
            kind: z.string().min(1).max(64),
            buckets: z
              .string()
              .regex(/^\d{1,3}(,\d{1,3}){0,255}$/, 'bucket numbers 0-255, comma-separated')
              .transform((s) => [...new Set(s.split(',').map(Number))].sort((a, b) => a - b))
              .refine((list) => list.every((b) => b < DIGEST_BUCKETS), 'bucket numbers are 0-255'),
          })
          .strict(),
        querystring: z
          .object({
            after: z.string().max(700).optional(),
            limit: z.coerce.number().int().min(1).max(MAX_BUCKET_LIMIT).default(DEFAULT_BUCKET_LIMIT),
          })
          .strict(),
        response: {
          200: z.object({
            region: z.string(),
            kind: z.string(),
            buckets: z.array(z.number().int()),
            entries: z.array(digestEntrySchema),
            next: z.string().optional(),
          }),
          ...errors,
        },
      },
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

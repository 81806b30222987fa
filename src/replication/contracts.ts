/**
 * The replication routes `iotdr replication` and `iotdr status` call, as route contracts:
 * digestRoutes and replicationRoutes register them, ApiClient calls them.
 */
import { z } from 'zod';
import { REGION_NAME_PATTERN } from '../common/index.js';
import { defineRoute, problemAnswers } from '../http/index.js';
import { changeSchema } from '../registry/index.js';
import { DEFAULT_BUCKET_LIMIT, DIGEST_ALGORITHM, DIGEST_BUCKETS, MAX_BUCKET_LIMIT } from './digest.js';

export const errors = problemAnswers(400, 401, 403, 404, 503);
export const regionName = z.string().regex(REGION_NAME_PATTERN, 'a region name');

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
const deadLetterFields = {
  peer: z.string(),
  id: z.string(),
  seq: z.number().int(),
  code: z
    .string()
    .optional()
    .describe('IOTDR_REGISTRY_INVALID_ENTITY or IOTDR_REGISTRY_UNKNOWN_KIND; absent on older letters'),
  reason: z.string(),
  at: z.number(),
  attempts: z.number().int(),
};
/**
 * A dead letter as the list shows it to readers: where the change came from and why it was refused,
 * never its document (a token's secretHash, a rule's webhook headers, an idempotency answer).
 */
const deadLetterSummarySchema = z
  .object({
    ...deadLetterFields,
    kind: z.string(),
    key: z.string(),
    op: z.enum(['upsert', 'delete']),
    origin: z.string().describe('the region the change was first written in'),
  })
  .meta({ id: 'DeadLetterSummary' });
const deadLetterSchema = z.object({ ...deadLetterFields, change: changeSchema }).meta({ id: 'DeadLetter' });

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

const TAGS = ['replication'];
const letterParams = z.object({ peer: regionName, id: z.string().min(1).max(700) }).strict();

export const REPLICATION_ROUTES = {
  digest: defineRoute({
    method: 'GET',
    url: '/v1/replication/digest',
    tags: TAGS,
    description: `Per kind: the number of live entities, the digest of their (kind, key, version, hlc, origin) and ${DIGEST_BUCKETS} bucket digests. Digest = sum modulo 2^256 of SHA-256 of each entity's JSON array [kind, key, version, hlc.wall, hlc.counter, origin]. Reads every entity: seconds for a million.`,
    responses: {
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
  }),
  bucket: defineRoute({
    method: 'GET',
    url: '/v1/replication/digest/:kind/:buckets',
    tags: TAGS,
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
    query: z
      .object({
        after: z.string().max(700).optional(),
        limit: z.coerce.number().int().min(1).max(MAX_BUCKET_LIMIT).default(DEFAULT_BUCKET_LIMIT),
      })
      .strict(),
    responses: {
      200: z.object({
        region: z.string(),
        kind: z.string(),
        buckets: z.array(z.number().int()),
        entries: z.array(digestEntrySchema),
        next: z.string().optional(),
      }),
      ...errors,
    },
  }),
  status: defineRoute({
    method: 'GET',
    url: '/v1/replication/status',
    tags: TAGS,
    description: 'Every link of this region: state, cursor, lag in changes and ms, last error, dead letters.',
    responses: { 200: z.object({ region: z.string(), links: z.array(linkStatusSchema) }), ...errors },
  }),
  deadLetters: defineRoute({
    method: 'GET',
    url: '/v1/replication/dead-letters',
    tags: TAGS,
    description:
      "The dead letters, each with the change's kind, key, op and origin and the refusal's code and reason; without the change's document (GET one for it, admin).",
    query: z.object({ peer: regionName.optional() }).strict(),
    responses: { 200: z.object({ items: z.array(deadLetterSummarySchema) }), ...errors },
  }),
  deadLetter: defineRoute({
    method: 'GET',
    url: '/v1/replication/dead-letters/:peer/:id',
    tags: TAGS,
    description:
      "One dead letter with the whole change, its document included (which may hold a token's secretHash or a rule's headers): admin only.",
    params: letterParams,
    responses: { 200: deadLetterSchema, ...errors },
  }),
  retryDeadLetter: defineRoute({
    method: 'POST',
    url: '/v1/replication/dead-letters/:peer/:id/retry',
    tags: TAGS,
    description:
      'Apply a dead-lettered change again; it leaves the dead letters unless it still cannot apply.',
    params: letterParams,
    responses: { 200: z.object({ outcome: z.enum(['applied', 'stale', 'dead-letter']) }), ...errors },
  }),
  discardDeadLetter: defineRoute({
    method: 'DELETE',
    url: '/v1/replication/dead-letters/:peer/:id',
    tags: TAGS,
    description: 'Discard a dead-lettered change.',
    params: letterParams,
    responses: { 204: z.null(), ...errors },
  }),
} as const;

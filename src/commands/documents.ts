/**
 * Documents of the command-and-control service stored as registry entities, so they replicate like
 * any other: commands (a command issued in one region is tracked and delivered from another after a
 * failover), idempotency records (a console retrying across a failover gets the first answer, not a
 * second device), and bulk onboarding jobs. Declared here, by their owner; `CNC_DOCUMENTS` is
 * registered with every region's registry, which checks what a peer sends with these schemas.
 */
import { z } from 'zod';
import { REGION_NAME_PATTERN } from '../common/index.js';
import { type DocumentKind, thingNameSchema } from '../registry/index.js';

/** The stored kinds (data on disk and the replication wire: never renamed). */
export const CNC_KIND = {
  /** A command to one device; key command id, ref thing name. */
  command: 'command',
  /** The first answer to a request with an Idempotency-Key; key a SHA-256, ref null. */
  idempotency: 'idempotency-key',
  /** A bulk onboarding job; key job id, ref null. */
  onboardingJob: 'onboarding-job',
} as const;

const iso = z.string().min(1);
const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a UUID');
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const regionName = z.string().regex(REGION_NAME_PATTERN);

/** Largest command payload, as JSON, in bytes. */
export const MAX_COMMAND_PAYLOAD_BYTES = 16_384;
/** Largest device result of a command, as JSON, in bytes. */
export const MAX_COMMAND_RESULT_BYTES = 16_384;

export const COMMAND_STATES = ['pending', 'delivered', 'succeeded', 'failed', 'timed-out'] as const;
export type CommandState = (typeof COMMAND_STATES)[number];
/** States a command never leaves. */
export const FINAL_COMMAND_STATES: readonly CommandState[] = ['succeeded', 'failed', 'timed-out'];

export const commandNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_.:-]{1,64}$/, '1 to 64 characters from a-z A-Z 0-9 _ . : -');

const jsonSize = (max: number) => (value: unknown) => JSON.stringify(value ?? null).length <= max;

export const commandDocSchema = z
  .object({
    commandId: uuid,
    thingName: thingNameSchema,
    name: commandNameSchema,
    payload: z.unknown().refine(jsonSize(MAX_COMMAND_PAYLOAD_BYTES), 'payload too large'),
    state: z.enum(COMMAND_STATES),
    /** The region that accepted the command, and the token name that sent it. */
    region: regionName,
    createdBy: z.string().min(1).max(128),
    /**
     * The submitting token's id (`name:<name>` for a static token): a scoped token sees only the jobs
     * it submitted. Absent on jobs recorded before it was kept; no scoped token sees those.
     */
    owner: z.string().min(1).max(140).optional(),
    createdAt: iso,
    /** The device must answer before this; then the command is timed-out. */
    deadlineAt: iso,
    /** Deliveries made so far (one per region session it was sent to), and the most allowed. */
    attempts: z.number().int().min(0),
    maxAttempts: z.number().int().min(1).max(100),
    /** Time between two deliveries while the device has not answered, ms. */
    retryAfterMs: z.number().int().min(100),
    deliveredAt: iso.nullable(),
    /** The region whose broker delivered it last. */
    deliveredBy: regionName.nullable(),
    completedAt: iso.nullable(),
    result: z.unknown().refine(jsonSize(MAX_COMMAND_RESULT_BYTES), 'result too large'),
    error: z.string().max(1000).nullable(),
  })
  .strict();
export type CommandDoc = z.infer<typeof commandDocSchema>;

/** An idempotency record: the first answer to a mutating request, replayed to its retries. */
export const idempotencyDocSchema = z
  .object({
    /** SHA-256 hex of the principal and the client's key: the entity key. */
    id: sha256Hex,
    method: z.enum(['POST', 'PUT', 'PATCH', 'DELETE']),
    path: z.string().min(1).max(2048),
    /** SHA-256 hex of the request body: a retry with another body is refused, not replayed. */
    requestHash: sha256Hex,
    status: z.number().int().min(200).max(599),
    /** The answer's body; a private key made by iotdr is withheld (it was shown once). */
    response: z.unknown(),
    region: regionName,
    createdAt: iso,
    expiresAt: iso,
  })
  .strict();
export type IdempotencyDoc = z.infer<typeof idempotencyDocSchema>;

export const JOB_STATES = ['running', 'succeeded', 'completed-with-errors', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** Most devices in one bulk onboarding job. */
export const MAX_JOB_DEVICES = 10_000;

export const jobResultSchema = z
  .object({
    /** Line of the input (CSV: 1 is the header; JSON: index in `devices` + 1). */
    line: z.number().int().min(1),
    thingName: thingNameSchema,
    status: z.enum(['created', 'failed', 'skipped']),
    certificateId: z.string().nullable(),
    error: z.string().max(1000).nullable(),
  })
  .strict();
export type JobResult = z.infer<typeof jobResultSchema>;

export const onboardingJobDocSchema = z
  .object({
    jobId: uuid,
    state: z.enum(JOB_STATES),
    template: z.string().min(1).max(128),
    region: regionName,
    createdBy: z.string().min(1).max(128),
    /**
     * The submitting token's id (`name:<name>` for a static token): a scoped token sees only the jobs
     * it submitted. Absent on jobs recorded before it was kept; no scoped token sees those.
     */
    owner: z.string().min(1).max(140).optional(),
    createdAt: iso,
    updatedAt: iso,
    finishedAt: iso.nullable(),
    total: z.number().int().min(0).max(MAX_JOB_DEVICES),
    done: z.number().int().min(0),
    succeeded: z.number().int().min(0),
    failed: z.number().int().min(0),
    /** Lines refused by validation with `partial` (not onboarded), as `line: field: message`. */
    rejected: z.array(z.string().max(500)).max(MAX_JOB_DEVICES),
    results: z.array(jobResultSchema).max(MAX_JOB_DEVICES),
    /** When the private keys iotdr made were dropped, not fetched within their TTL (absent otherwise). */
    keysExpiredAt: iso.optional(),
  })
  .strict();
export type OnboardingJobDoc = z.infer<typeof onboardingJobDocSchema>;

/** The command-and-control documents as registry document kinds. */
export const CNC_DOCUMENTS: readonly DocumentKind[] = [
  {
    kind: CNC_KIND.command,
    schema: commandDocSchema,
    key: uuid,
    identity: (doc) => ({ key: doc.commandId as string, ref: doc.thingName as string }),
  },
  {
    kind: CNC_KIND.idempotency,
    schema: idempotencyDocSchema,
    key: sha256Hex,
    identity: (doc) => ({ key: doc.id as string, ref: null }),
  },
  {
    kind: CNC_KIND.onboardingJob,
    schema: onboardingJobDocSchema,
    key: uuid,
    identity: (doc) => ({ key: doc.jobId as string, ref: null }),
  },
];

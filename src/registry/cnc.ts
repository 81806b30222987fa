/**
 * Documents of the command-and-control service (src/commands) stored as registry entities, so they
 * replicate like any other: commands (a command issued in one region is tracked and delivered from
 * another after a failover), idempotency records (a console retrying across a failover gets the
 * first answer, not a second device), and bulk onboarding jobs. Validated here because every region
 * must accept what any other wrote.
 */
import { z } from 'zod';
import { thingNameSchema } from './model.js';

const iso = z.string().min(1);
const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a UUID');
const regionName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/);

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
    id: z.string().regex(/^[0-9a-f]{64}$/),
    method: z.enum(['POST', 'PUT', 'PATCH', 'DELETE']),
    path: z.string().min(1).max(2048),
    /** SHA-256 hex of the request body: a retry with another body is refused, not replayed. */
    requestHash: z.string().regex(/^[0-9a-f]{64}$/),
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
  })
  .strict();
export type OnboardingJobDoc = z.infer<typeof onboardingJobDocSchema>;

export const cncKeySchemas = {
  command: uuid,
  idempotency: z.string().regex(/^[0-9a-f]{64}$/),
  job: uuid,
};

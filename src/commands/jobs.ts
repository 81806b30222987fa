/**
 * Bulk onboarding: a JSON or CSV list of devices, validated whole before anything is written (every
 * bad line and field reported; nothing onboarded from a list that fails, unless `partial`), then
 * onboarded by a background job whose progress and per-device results are a registry entity (so
 * they replicate and any region can show them). Private keys iotdr makes are kept in memory only,
 * handed out once through POST /v1/onboarding-jobs/{id}/keys, to the token that submitted the
 * job, and dropped when not fetched within their TTL.
 */
import { z } from 'zod';
import {
  type Clock,
  type FieldIssue,
  type Logger,
  systemClock,
  uuidv7,
  ValidationError,
} from '../common/index.js';
import { KIND, policyNameSchema, type RegistryService, thingGroupNameSchema } from '../registry/index.js';
import { CsvError, parseCsv } from './csv.js';
import {
  checkReferences,
  MAX_ONBOARD_GROUPS,
  type OnboardInput,
  onboardBody,
  onboardDevice,
} from './devices.js';
import {
  CNC_KIND,
  type JobResult,
  MAX_JOB_DEVICES,
  type OnboardingJobDoc,
  onboardingJobDocSchema,
} from './documents.js';
import { KeysNotFoundError, UnknownJobError } from './errors.js';
import { pruneEntities } from './prune.js';

/** Devices onboarded at once by a job. */
export const JOB_CONCURRENCY = 8;
/** Most often a running job writes its progress, ms. */
export const JOB_PROGRESS_EVERY_MS = 250;
/** How long a finished job (its report) is kept, ms. */
export const JOB_RETENTION_MS = 7 * 24 * 3600 * 1000;
const JOB_PRUNE_MS = 3600 * 1000;
/** How long the private keys of a finished job wait to be fetched, ms. Default 1 hour. */
export const JOB_KEYS_TTL_MS = 3600 * 1000;
/** Most time between two looks for keys past their TTL, ms. */
const KEYS_SWEEP_MS = 60 * 1000;

const CSV_COLUMNS = ['thingName', 'groups', 'csr', 'attributes', 'thingTypeName'] as const;

export const jobQuerySchema = z
  .object({
    template: policyNameSchema.optional(),
    /** Comma-separated groups every device joins (CSV; a JSON body says `groups`). */
    groups: z
      .string()
      .optional()
      .transform((s) => (s ? s.split(',').filter(Boolean) : undefined))
      .pipe(z.array(thingGroupNameSchema).max(MAX_ONBOARD_GROUPS).optional()),
    partial: z
      .enum(['true', 'false'])
      .optional()
      .transform((v) => v === 'true'),
  })
  .strict();

const jsonBodySchema = z
  .object({
    template: policyNameSchema,
    groups: z.array(thingGroupNameSchema).max(MAX_ONBOARD_GROUPS).default([]),
    partial: z.boolean().default(false),
    devices: z.array(z.unknown()).min(1).max(MAX_JOB_DEVICES),
  })
  .strict();

export interface JobInput {
  template: string;
  partial: boolean;
  /** Each device with the line it came from. */
  rows: { line: number; device: unknown }[];
}

function invalid(issues: FieldIssue[]): ValidationError {
  const shown = issues.slice(0, 20).map((i) => `${i.path}: ${i.message}`);
  const more = issues.length > 20 ? `; and ${issues.length - 20} more` : '';
  return new ValidationError(
    `the device list is not valid: ${shown.join('; ')}${more}`,
    issues.slice(0, 1000),
  );
}

/** A JSON body (`{template, groups, partial, devices: [...]}`), line = index + 1. */
export function jobInputFromJson(body: unknown): JobInput {
  const parsed = jsonBodySchema.safeParse(body);
  if (!parsed.success)
    throw invalid(
      parsed.error.issues.map((i) => ({ path: ['body', ...i.path].join('.'), message: i.message })),
    );
  const { template, groups, partial, devices } = parsed.data;
  return {
    template,
    partial,
    rows: devices.map((d, i) => ({
      line: i + 1,
      device: d !== null && typeof d === 'object' && !('groups' in d) ? { ...d, groups } : d,
    })),
  };
}

/** A CSV body with a header line naming its columns (thingName required). */
export function jobInputFromCsv(text: string, query: z.infer<typeof jobQuerySchema>): JobInput {
  if (!query.template)
    throw invalid([
      { path: 'querystring.template', message: 'required with a CSV body: the policy template' },
    ]);
  let records: ReturnType<typeof parseCsv>;
  try {
    records = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvError) throw invalid([{ path: `line ${error.line}`, message: error.message }]);
    throw error;
  }
  const [header, ...rows] = records;
  if (!header)
    throw invalid([{ path: 'line 1', message: 'empty: expected a header line such as thingName,groups' }]);
  const columns = header.fields.map((f) => f.trim());
  const issues: FieldIssue[] = [];
  columns.forEach((c, i) => {
    if (!(CSV_COLUMNS as readonly string[]).includes(c))
      issues.push({
        path: `line ${header.line}.column ${i + 1}`,
        message: `unknown column '${c}'; known: ${CSV_COLUMNS.join(', ')}`,
      });
  });
  if (!columns.includes('thingName'))
    issues.push({ path: `line ${header.line}`, message: 'a thingName column is required' });
  if (rows.length > MAX_JOB_DEVICES)
    issues.push({ path: 'body', message: `at most ${MAX_JOB_DEVICES} devices per job, got ${rows.length}` });
  if (rows.length === 0) issues.push({ path: 'body', message: 'no device lines after the header' });
  if (issues.length > 0) throw invalid(issues);
  return {
    template: query.template,
    partial: query.partial,
    rows: rows.map((record) => {
      const device: Record<string, unknown> = {};
      if (record.fields.length !== columns.length) {
        device.__columns = `expected ${columns.length} fields, got ${record.fields.length}`;
      }
      columns.forEach((column, i) => {
        const value = record.fields[i] ?? '';
        if (value === '') return;
        if (column === 'groups')
          device.groups = value
            .split(';')
            .map((g) => g.trim())
            .filter(Boolean);
        else if (column === 'attributes')
          device.attributes = Object.fromEntries(
            value
              .split(';')
              .filter(Boolean)
              .map((pair) => {
                const at = pair.indexOf('=');
                return at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
              }),
          );
        else device[column] = value;
      });
      if (device.groups === undefined && query.groups) device.groups = query.groups;
      return { line: record.line, device };
    }),
  };
}

export interface ValidatedJob {
  template: string;
  accepted: { line: number; device: OnboardInput }[];
  /** `line N.field: message` for every refused line. */
  rejected: FieldIssue[];
}

/**
 * Checks every line: its fields, a name used twice in the list, a device that already exists. The
 * template and groups must exist (404 otherwise: the whole list is refused).
 */
export async function validateJob(service: RegistryService, input: JobInput): Promise<ValidatedJob> {
  const rejected: FieldIssue[] = [];
  const accepted: ValidatedJob['accepted'] = [];
  const seen = new Map<string, number>();
  const groups = new Set<string>();
  for (const { line, device } of input.rows) {
    if (device !== null && typeof device === 'object' && '__columns' in device) {
      rejected.push({ path: `line ${line}`, message: String((device as { __columns: unknown }).__columns) });
      continue;
    }
    const parsed = onboardBody.safeParse(
      device !== null && typeof device === 'object' ? { ...device, template: input.template } : device,
    );
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        rejected.push({ path: [`line ${line}`, ...issue.path].join('.'), message: issue.message });
      continue;
    }
    const first = seen.get(parsed.data.thingName);
    if (first !== undefined) {
      rejected.push({
        path: `line ${line}.thingName`,
        message: `'${parsed.data.thingName}' is already on line ${first}`,
      });
      continue;
    }
    seen.set(parsed.data.thingName, line);
    for (const g of parsed.data.groups) groups.add(g);
    accepted.push({ line, device: parsed.data });
  }
  await checkReferences(service, input.template, [...groups]);
  const fresh: ValidatedJob['accepted'] = [];
  for (const row of accepted) {
    const existing = await service.store.get(KIND.thing, row.device.thingName);
    if (existing && !existing.deleted)
      rejected.push({
        path: `line ${row.line}.thingName`,
        message: `device '${row.device.thingName}' already exists`,
      });
    else fresh.push(row);
  }
  rejected.sort((a, b) => lineOf(a.path) - lineOf(b.path));
  return { template: input.template, accepted: fresh, rejected };
}

function lineOf(path: string): number {
  return Number(/^line (\d+)/.exec(path)?.[1] ?? 0);
}

export type Job = OnboardingJobDoc & { version: number };

/** A job as the API shows it: without the token that owns it (a token id is for its holder and admins). */
export function publicJob(job: Job): Omit<Job, 'owner'> {
  const { owner: _owner, ...rest } = job;
  return rest;
}

/** What a device whose key iotdr made needs to connect, handed out once. */
export interface JobKey {
  certificateId: string;
  certificatePem: string;
  privateKeyPem: string;
}

export interface JobServiceOptions {
  service: RegistryService;
  logger?: Logger;
  clock?: Clock;
  concurrency?: number;
  /** How long a finished job's keys wait to be fetched, ms. Default JOB_KEYS_TTL_MS (1 hour). */
  keysTtlMs?: number;
}

/** Keys iotdr made for a job's devices, waiting for the token that submitted the job. */
interface WaitingKeys {
  /** Who may fetch them: the submitting token's id (its name for a token with no id). */
  readonly owner: string;
  readonly keys: Map<string, JobKey>;
  /** ms epoch; not fetched by then, they are dropped. */
  readonly expiresAt: number;
}

export class JobService {
  readonly #service: RegistryService;
  readonly #logger: Logger | undefined;
  readonly #clock: Clock;
  readonly #concurrency: number;
  readonly #keysTtlMs: number;
  /** Keys iotdr made for a job's devices (with their certificates), until fetched once or expired. */
  readonly #keys = new Map<string, WaitingKeys>();
  readonly #running = new Map<string, Promise<void>>();
  #stopping = false;
  #pruneTimer: NodeJS.Timeout | undefined;
  #keysTimer: NodeJS.Timeout | undefined;

  constructor(options: JobServiceOptions) {
    this.#service = options.service;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#concurrency = options.concurrency ?? JOB_CONCURRENCY;
    this.#keysTtlMs = options.keysTtlMs ?? JOB_KEYS_TTL_MS;
  }

  /** Deletes this region's jobs finished more than JOB_RETENTION_MS ago. */
  prune(): Promise<number> {
    const before = this.#clock.now() - JOB_RETENTION_MS;
    return pruneEntities(this.#service, CNC_KIND.onboardingJob, (doc) => {
      const job = onboardingJobDocSchema.safeParse(doc);
      return (
        job.success &&
        job.data.region === this.#service.region &&
        job.data.finishedAt !== null &&
        Date.parse(job.data.finishedAt) < before
      );
    });
  }

  /** Jobs of this region left running by a stop or a crash are marked failed, with what they did. */
  async start(): Promise<void> {
    this.#pruneTimer = setInterval(() => {
      this.prune().catch((error) => this.#logger?.warn({ err: error }, 'cannot prune finished jobs'));
    }, JOB_PRUNE_MS);
    this.#pruneTimer.unref();
    this.#keysTimer = setInterval(
      () => {
        this.expireKeys().catch((error) => this.#logger?.warn({ err: error }, 'cannot expire job keys'));
      },
      Math.max(1000, Math.min(this.#keysTtlMs, KEYS_SWEEP_MS)),
    );
    this.#keysTimer.unref();
    let after: string | undefined;
    for (;;) {
      const page = await this.#service.store.list(CNC_KIND.onboardingJob, {
        limit: 500,
        ...(after === undefined ? {} : { after }),
      });
      for (const record of page) {
        const job = onboardingJobDocSchema.safeParse(record.doc);
        if (!job.success || job.data.state !== 'running' || job.data.region !== this.#service.region)
          continue;
        await this.#write({
          ...job.data,
          state: 'failed',
          finishedAt: this.#iso(),
          updatedAt: this.#iso(),
          rejected: [
            ...job.data.rejected,
            `interrupted after ${job.data.done} of ${job.data.total} devices; submit the rest again`,
          ].slice(0, MAX_JOB_DEVICES),
        });
      }
      if (page.length < 500) return;
      after = page[page.length - 1]?.key;
    }
  }

  /** Waits for running jobs to record where they stopped. */
  async stop(): Promise<void> {
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#pruneTimer = undefined;
    if (this.#keysTimer) clearInterval(this.#keysTimer);
    this.#keysTimer = undefined;
    this.#stopping = true;
    await Promise.allSettled([...this.#running.values()]);
  }

  /**
   * Records the job and starts it; resolves with the job as recorded (state running). `owner` (the
   * submitting token's id) is the only one who may fetch the keys iotdr makes.
   */
  async submit(validated: ValidatedJob, createdBy: string, owner: string): Promise<Job> {
    const now = this.#iso();
    const doc: OnboardingJobDoc = {
      jobId: uuidv7(this.#clock.now()),
      state: 'running',
      template: validated.template,
      region: this.#service.region,
      createdBy,
      owner,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
      total: validated.accepted.length,
      done: 0,
      succeeded: 0,
      failed: 0,
      rejected: validated.rejected.map((r) => `${r.path}: ${r.message}`.slice(0, 500)),
      results: [],
    };
    const version = await this.#write(doc);
    const run = this.#run(doc, validated.accepted, owner).catch((error) =>
      this.#logger?.error({ err: error, jobId: doc.jobId }, 'onboarding job failed'),
    );
    this.#running.set(doc.jobId, run);
    void run.finally(() => this.#running.delete(doc.jobId));
    return { ...doc, version };
  }

  async get(jobId: string): Promise<Job> {
    const record = await this.#service.store.get(CNC_KIND.onboardingJob, jobId);
    const parsed = record && !record.deleted ? onboardingJobDocSchema.safeParse(record.doc) : undefined;
    if (!record || !parsed?.success) throw new UnknownJobError(jobId);
    return { ...parsed.data, version: record.version };
  }

  /**
   * The private keys iotdr made for the job's devices, once, to their owner; undefined when there
   * are none (left). Another token is told there are none for it (KeysNotFoundError, 404).
   */
  takeKeys(jobId: string, owner: string): Record<string, JobKey> | undefined {
    const waiting = this.#waiting(jobId);
    if (!waiting) return undefined;
    if (waiting.owner !== owner) throw new KeysNotFoundError(jobId);
    this.#keys.delete(jobId);
    return Object.fromEntries(waiting.keys);
  }

  /** Whether the job's keys are still waiting here for `owner` to fetch them. */
  hasKeys(jobId: string, owner: string): boolean {
    return this.#waiting(jobId)?.owner === owner;
  }

  /**
   * Drops the keys not fetched within their TTL and records on each job when they expired (its
   * `keysExpiredAt`, which replicates). Runs at least once a minute; reads run it first too.
   */
  async expireKeys(): Promise<number> {
    const now = this.#clock.now();
    let expired = 0;
    for (const [jobId, waiting] of [...this.#keys]) {
      // A job still writing its final state is left to the next pass: this write would undo it.
      if (waiting.expiresAt > now || this.#keys.get(jobId) !== waiting || this.#running.has(jobId)) continue;
      this.#keys.delete(jobId);
      expired++;
      this.#logger?.info(
        { jobId, devices: waiting.keys.size },
        'onboarding keys not fetched in time: dropped',
      );
      try {
        const { version: _version, ...job } = await this.get(jobId);
        await this.#write({ ...job, keysExpiredAt: new Date(now).toISOString(), updatedAt: this.#iso() });
      } catch (error) {
        // The keys are gone either way; the job (pruned meanwhile?) just does not say so.
        this.#logger?.warn({ err: error, jobId }, 'cannot record that the job keys expired');
      }
    }
    return expired;
  }

  /** The keys waiting for the job, unless their TTL passed (they go at the next expireKeys). */
  #waiting(jobId: string): WaitingKeys | undefined {
    const waiting = this.#keys.get(jobId);
    return waiting && waiting.expiresAt > this.#clock.now() ? waiting : undefined;
  }

  async #run(initial: OnboardingJobDoc, rows: ValidatedJob['accepted'], owner: string): Promise<void> {
    const job = { ...initial, results: [] as JobResult[] };
    const keys = new Map<string, JobKey>();
    let next = 0;
    let lastWrite = this.#clock.now();
    let writing: Promise<unknown> = Promise.resolve();
    const flush = () => {
      writing = writing.then(() =>
        this.#write({ ...job, results: [...job.results], updatedAt: this.#iso() }),
      );
      return writing;
    };
    const worker = async () => {
      while (!this.#stopping) {
        const row = rows[next++];
        if (!row) return;
        try {
          const device = await onboardDevice(this.#service, row.device);
          if (device.privateKeyPem)
            keys.set(device.thingName, {
              certificateId: device.certificateId,
              certificatePem: device.certificatePem,
              privateKeyPem: device.privateKeyPem,
            });
          job.results.push({
            line: row.line,
            thingName: device.thingName,
            status: 'created',
            certificateId: device.certificateId,
            error: null,
          });
          job.succeeded++;
        } catch (error) {
          job.results.push({
            line: row.line,
            thingName: row.device.thingName,
            status: 'failed',
            certificateId: null,
            error: (error as Error).message.slice(0, 1000),
          });
          job.failed++;
        }
        job.done++;
        if (this.#clock.now() - lastWrite >= JOB_PROGRESS_EVERY_MS) {
          lastWrite = this.#clock.now();
          void flush();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, rows.length) }, worker));
    await writing;
    job.results.sort((a, b) => a.line - b.line);
    const interrupted = job.done < job.total;
    const finished = this.#write({
      ...job,
      state:
        interrupted || (job.succeeded === 0 && job.total > 0)
          ? 'failed'
          : job.failed > 0 || job.rejected.length > 0
            ? 'completed-with-errors'
            : 'succeeded',
      rejected: interrupted
        ? [...job.rejected, `stopped after ${job.done} of ${job.total} devices; submit the rest again`]
        : job.rejected,
      finishedAt: this.#iso(),
      updatedAt: this.#iso(),
    });
    // Set before the final write resolves: once a reader sees the job finished, its keys are here.
    if (keys.size > 0)
      this.#keys.set(job.jobId, { owner, keys, expiresAt: this.#clock.now() + this.#keysTtlMs });
    await finished;
    this.#logger?.info(
      { jobId: job.jobId, total: job.total, succeeded: job.succeeded, failed: job.failed },
      'onboarding job finished',
    );
  }

  async #write(doc: OnboardingJobDoc): Promise<number> {
    return this.#service.transaction(async (tx) => {
      const previous = await tx.get(CNC_KIND.onboardingJob, doc.jobId, { includeDeleted: true });
      return this.#service.writeEntity(tx, CNC_KIND.onboardingJob, doc.jobId, null, { ...doc }, previous);
    });
  }

  #iso(): string {
    return new Date(this.#clock.now()).toISOString();
  }
}

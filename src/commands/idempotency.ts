/**
 * Idempotency keys (the `Idempotency-Key` header, as in the IETF httpapi draft): the first answer
 * to a mutating request is stored as a registry entity, so it replicates; a retry with the same key
 * — in this region or, after a failover, in another — gets that answer again instead of a second
 * device or a second command. A key reused for another request is refused (422).
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Clock, type Logger, systemClock, ValidationError } from '../common/index.js';
import type { RegistryService } from '../registry/index.js';
import { CNC_KIND, type IdempotencyDoc, idempotencyDocSchema } from './documents.js';
import { IdempotencyInFlightError, IdempotencyMismatchError } from './errors.js';
import { pruneEntities } from './prune.js';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** What a key may look like: visible ASCII without spaces, 1..255 characters. */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
/** How long an answer is kept for retries, ms. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** How often expired records are removed, ms. */
export const IDEMPOTENCY_PRUNE_MS = 10 * 60 * 1000;

export interface Answer {
  status: number;
  body: unknown;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Private keys made by iotdr are shown once: a replayed answer says they were withheld. */
function withholdKeys(body: unknown): unknown {
  if (Array.isArray(body)) return body.map(withholdKeys);
  if (body === null || typeof body !== 'object') return body;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k === 'privateKeyPem') out.privateKeyWithheld = true;
    else out[k] = withholdKeys(v);
  }
  return out;
}

export class IdempotencyStore {
  readonly #service: RegistryService;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #inFlight = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { service: RegistryService; clock?: Clock; logger?: Logger }) {
    this.#service = options.service;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
  }

  /** Removes this region's expired records now and then (other regions remove their own). */
  start(): void {
    this.#timer = setInterval(() => {
      this.prune().catch((error) => this.#logger?.warn({ err: error }, 'cannot prune idempotency keys'));
    }, IDEMPOTENCY_PRUNE_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Runs `execute` once per (caller, key): answers a retry with the stored answer (header
   * `idempotent-replayed: true`). Without the header, just runs it. Only answers `execute` returns
   * are stored; a request that failed (an error thrown: 4xx or 5xx) changed nothing and runs again.
   */
  async run(
    request: FastifyRequest,
    reply: FastifyReply,
    execute: () => Promise<Answer>,
  ): Promise<FastifyReply> {
    const header = request.headers[IDEMPOTENCY_HEADER];
    if (header === undefined) {
      const answer = await execute();
      return reply.code(answer.status).send(answer.body);
    }
    const key = Array.isArray(header) ? header[0] : header;
    if (key === undefined || !KEY_PATTERN.test(key))
      throw new ValidationError('Idempotency-Key: 1 to 255 visible ASCII characters, no spaces', [
        { path: 'headers.idempotency-key', message: '1 to 255 visible ASCII characters' },
      ]);
    const principal = request.principal?.tokenId ?? request.principal?.name ?? 'anonymous';
    const id = sha256(`${principal}\u0000${key}`);
    const method = request.method as IdempotencyDoc['method'];
    const path = request.url.split('?')[0] ?? request.url;
    const requestHash = sha256(`${method} ${request.url}\u0000${JSON.stringify(request.body ?? null)}`);

    const stored = await this.#load(id);
    if (stored) return this.#replay(reply, stored, requestHash);
    if (this.#inFlight.has(id)) throw new IdempotencyInFlightError();
    this.#inFlight.add(id);
    try {
      const answer = await execute();
      if (answer.status < 400) {
        const now = this.#clock.now();
        const doc: IdempotencyDoc = {
          id,
          method,
          path: path.slice(0, 2048),
          requestHash,
          status: answer.status,
          response: withholdKeys(answer.body),
          region: this.#service.region,
          createdAt: new Date(now).toISOString(),
          expiresAt: new Date(now + IDEMPOTENCY_TTL_MS).toISOString(),
        };
        await this.#service.transaction(async (tx) => {
          const previous = await tx.get(CNC_KIND.idempotency, id, { includeDeleted: true });
          await this.#service.writeEntity(tx, CNC_KIND.idempotency, id, null, { ...doc }, previous);
        });
      }
      return reply.code(answer.status).send(answer.body);
    } finally {
      this.#inFlight.delete(id);
    }
  }

  /** Removes this region's expired records. */
  prune(): Promise<number> {
    const now = this.#clock.now();
    return pruneEntities(this.#service, CNC_KIND.idempotency, (doc) => {
      const parsed = idempotencyDocSchema.safeParse(doc);
      return (
        parsed.success &&
        parsed.data.region === this.#service.region &&
        Date.parse(parsed.data.expiresAt) <= now
      );
    });
  }

  async #load(id: string): Promise<IdempotencyDoc | undefined> {
    const record = await this.#service.store.get(CNC_KIND.idempotency, id);
    if (!record || record.deleted || record.doc === null) return undefined;
    const parsed = idempotencyDocSchema.safeParse(record.doc);
    if (!parsed.success || Date.parse(parsed.data.expiresAt) <= this.#clock.now()) return undefined;
    return parsed.data;
  }

  #replay(reply: FastifyReply, stored: IdempotencyDoc, requestHash: string): FastifyReply {
    if (stored.requestHash !== requestHash) throw new IdempotencyMismatchError();
    reply.header('idempotent-replayed', 'true');
    // The stored body is sent as it was stored (keys withheld), not through the route's schema.
    return reply.serializer(JSON.stringify).code(stored.status).send(stored.response);
  }
}

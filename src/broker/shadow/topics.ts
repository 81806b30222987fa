import type { Clock, Logger } from '../../common/index.js';
import {
  type ChangeRecord,
  invalidShadow,
  KIND,
  type RegistryService,
  thingNameSchema,
} from '../../registry/index.js';
import {
  type HandlerContext,
  type HandlerResult,
  handleDelete,
  handleGet,
  handleUpdate,
  payloadClientToken,
} from './handlers.js';
import {
  keyOfChange,
  type Publication,
  parseRequestTopic,
  publicationsFor,
  rejection,
  type ShadowOperation,
  shadowTopic,
} from './messages.js';

/** A device PUBLISH that passed the broker's authorization. */
export type { InboundMessage } from '../engine.js';

import type { InboundMessage } from '../engine.js';

/** How the engine publishes: the broker's publish, or anything with the same contract. */
export type ShadowPublish = (
  topic: string,
  payload: Buffer | string,
  options?: { qos?: 0 | 1; retain?: boolean },
) => Promise<void>;

export interface ShadowTopicsOptions {
  service: RegistryService;
  publish: ShadowPublish;
  /** QoS of every message the engine publishes. Default 1, so QoS 1 subscribers get them reliably. */
  qos?: 0 | 1;
  /** Receives failed publications and internal errors. Default: none (the engine stays quiet). */
  logger?: Logger;
  /** Time of rejections. Default: the service's clock. */
  clock?: Clock;
}

const HANDLERS: Record<ShadowOperation, (ctx: HandlerContext) => Promise<HandlerResult>> = {
  get: handleGet,
  update: handleUpdate,
  delete: handleDelete,
};

/**
 * The shadow topic engine. It owns no socket: the broker hands it each authorized device message
 * (`handle`) and gives it a `publish` function. Requests of one thing are served in arrival
 * order. Every committed shadow change — from a device here, the HTTP API, or replication from
 * another region — is announced on `update/delta`, `update/documents` or `delete/accepted`, so a
 * device connected to any region hears about changes made in any other.
 */
export class ShadowTopics {
  readonly #service: RegistryService;
  readonly #publish: ShadowPublish;
  readonly #qos: 0 | 1;
  readonly #log: Logger | undefined;
  readonly #clock: Clock;
  /** Publications of committed changes, until their flush or the request that made them claims them. */
  readonly #pending = new Map<string, Publication[]>();
  readonly #flushes = new Set<NodeJS.Immediate>();
  /** Tail of each thing's request queue. */
  readonly #queues = new Map<string, Promise<void>>();
  #unsubscribe: (() => void) | undefined;

  constructor(options: ShadowTopicsOptions) {
    this.#service = options.service;
    this.#publish = options.publish;
    this.#qos = options.qos ?? 1;
    this.#log = options.logger;
    this.#clock = options.clock ?? options.service.clock;
  }

  /** Starts announcing committed shadow changes. */
  start(): void {
    this.#unsubscribe ??= this.#service.onCommit((changes) => this.#committed(changes));
  }

  /** Stops announcing, drops what was not announced yet, and waits for requests in progress. */
  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const flush of this.#flushes) clearImmediate(flush);
    this.#flushes.clear();
    this.#pending.clear();
    await Promise.allSettled([...this.#queues.values()]);
  }

  /** Serves one device message; other topics than the three request topics are ignored. */
  handle(message: InboundMessage): Promise<void> {
    const request = parseRequestTopic(message.topic);
    if (!request) return Promise.resolve();
    const { thing, operation } = request;
    const previous = this.#queues.get(thing) ?? Promise.resolve();
    const next = previous.then(() => this.#serve(thing, operation, message.payload));
    this.#queues.set(thing, next);
    void next.then(() => {
      if (this.#queues.get(thing) === next) this.#queues.delete(thing);
    });
    return next;
  }

  async #serve(thing: string, operation: ShadowOperation, payload: Buffer): Promise<void> {
    let result: HandlerResult;
    try {
      if (!thingNameSchema.safeParse(thing).success) {
        throw invalidShadow('Invalid thing name: 1 to 128 characters from a-z A-Z 0-9 : _ -');
      }
      result = await HANDLERS[operation]({
        service: this.#service,
        thing,
        payload,
        claim: (key) => this.#claim(key),
      });
    } catch (error) {
      const reply = rejection(error, Math.floor(this.#clock.now() / 1000), payloadClientToken(payload));
      if (reply.internal) this.#log?.error({ err: error, thing, operation }, 'shadow request failed');
      result = {
        publications: [{ topic: shadowTopic(thing, `${operation}/rejected`), payload: reply.payload }],
      };
    }
    await this.#send(result.publications);
  }

  #committed(changes: ChangeRecord[]): void {
    for (const change of changes) {
      if (change.kind !== KIND.shadow) continue;
      let publications: Publication[];
      try {
        publications = publicationsFor(change);
      } catch (error) {
        this.#log?.error({ err: error, thing: change.key }, 'cannot announce a shadow change');
        continue;
      }
      if (publications.length === 0) continue;
      const key = keyOfChange(change);
      this.#pending.set(key, publications);
      // Deferred one turn: a request served here claims its change first and announces it after
      // its own reply; anything else (HTTP, replication) is announced by this flush.
      const flush = setImmediate(() => {
        this.#flushes.delete(flush);
        const unclaimed = this.#claim(key);
        if (unclaimed) void this.#send(unclaimed);
      });
      this.#flushes.add(flush);
    }
  }

  #claim(key: string): Publication[] | undefined {
    const publications = this.#pending.get(key);
    this.#pending.delete(key);
    return publications;
  }

  async #send(publications: Publication[]): Promise<void> {
    for (const p of publications) {
      try {
        await this.#publish(p.topic, JSON.stringify(p.payload), { qos: this.#qos, retain: false });
      } catch (error) {
        this.#log?.warn({ err: error, topic: p.topic }, 'shadow publication failed');
      }
    }
  }
}

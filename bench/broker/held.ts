/**
 * Subscriptions held on a broker while QoS1 is measured: idle sessions (token listener, clean
 * sessions, QoS 1 subscriptions, nothing published to them), each holding up to `perSession`
 * distinct filters, all connected and acknowledged before the timed part starts.
 *
 * Two kinds, because a Redis-backed broker (mqemitter-redis) pays for them differently: an exact
 * filter is a Redis SUBSCRIBE to one channel, a filter with a wildcard a PSUBSCRIBE to a pattern,
 * and Redis matches every PUBLISH against every pattern.
 * - exact: `bench/held/<thing>/<k>`, as a device subscribes to its own topics;
 * - wildcard: `bench/held/<thing>/<k>/+`, as a backend does, or a device SDK that handles commands
 *   (`$iotdr/things/<thing>/commands/+`, one distinct pattern per device).
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { MqttClient } from 'mqtt';
import { check } from '../registry/common.js';
import { type Credential, connectClient, type Target } from './load.js';

export type HeldKind = 'exact' | 'wildcard';

/** Filters per SUBSCRIBE packet. */
const FILTERS_PER_PACKET = 100;

export function heldFilter(thing: string, k: number, kind: HeldKind): string {
  const topic = `bench/held/${thing}/${k}`;
  return kind === 'exact' ? topic : `${topic}/+`;
}

interface Holder {
  client: MqttClient;
  /** Filters this session holds: 0 … filters-1. */
  filters: number;
}

export class HeldSubscriptions {
  readonly #target: Target;
  readonly #credentials: readonly Credential[];
  readonly #perSession: number;
  readonly #context: SecureContext;
  readonly #holders: Holder[] = [];
  #kind: HeldKind | undefined;
  /** Held sessions the broker closed (or that failed) before release. */
  #lost: string[] = [];

  /** `credentials`: one per session, with the holder policy (token credentials: cheap to connect). */
  constructor(target: Target, credentials: readonly Credential[], perSession: number) {
    this.#target = target;
    this.#credentials = credentials;
    this.#perSession = perSession;
    this.#context = createSecureContext({ ca: target.caPem });
  }

  /** Subscriptions held now. */
  get count(): number {
    return this.#holders.reduce((n, h) => n + h.filters, 0);
  }

  get kind(): HeldKind | undefined {
    return this.#kind;
  }

  /** Sessions needed for `total` subscriptions. */
  static sessionsFor(total: number, perSession: number): number {
    return Math.ceil(total / perSession);
  }

  /**
   * Holds `total` subscriptions of `kind` (more sessions, or more filters on the last one), with
   * `concurrency` sessions connecting at once; every filter's SUBACK must grant QoS 1.
   */
  async holdUpTo(total: number, kind: HeldKind, concurrency: number): Promise<void> {
    check(
      this.#kind === undefined || this.#kind === kind,
      `holding ${this.#kind} subscriptions, not ${kind}`,
    );
    check(total >= this.count, `${this.count} subscriptions held already, more than ${total}`);
    const sessions = HeldSubscriptions.sessionsFor(total, this.#perSession);
    check(
      sessions <= this.#credentials.length,
      `${sessions} sessions needed, ${this.#credentials.length} provisioned`,
    );
    this.#kind = kind;
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < sessions; i = next++) {
        const want = Math.min(this.#perSession, total - i * this.#perSession);
        await this.#grow(i, want, kind);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, sessions) }, worker));
  }

  async #grow(index: number, want: number, kind: HeldKind): Promise<void> {
    const credential = this.#credentials[index] as Credential;
    let holder = this.#holders[index];
    if (holder === undefined) {
      const created: Holder = {
        client: await connectClient(this.#target, credential, this.#context),
        filters: 0,
      };
      created.client.on('error', () => undefined);
      created.client.once('close', () => {
        if (this.#holders.includes(created)) this.#lost.push(credential.clientId);
      });
      this.#holders[index] = created;
      holder = created;
    }
    while (holder.filters < want) {
      const from = holder.filters;
      const to = Math.min(want, from + FILTERS_PER_PACKET);
      const filters = Array.from({ length: to - from }, (_, k) =>
        heldFilter(credential.clientId, from + k, kind),
      );
      const granted = await holder.client.subscribeAsync(filters, { qos: 1 });
      const refused = granted.filter((g) => g.qos !== 1);
      check(
        granted.length === filters.length && refused.length === 0,
        `SUBACK for ${credential.clientId} granted ${JSON.stringify(refused.map((g) => [g.topic, g.qos]))} of ${filters.length} filters`,
      );
      holder.filters = to;
    }
  }

  /** Fails when the broker closed a held session: its subscriptions were not held through the run. */
  checkHeld(): void {
    check(
      this.#lost.length === 0,
      `${this.#lost.length} held session(s) closed by the broker, e.g. ${this.#lost.slice(0, 3).join(', ')}`,
    );
  }

  /** Ends every held session (DISCONNECT); the broker drops their subscriptions. */
  async release(): Promise<void> {
    const holders = this.#holders.splice(0);
    this.#kind = undefined;
    await Promise.all(holders.map((h) => h.client.endAsync().catch(() => undefined)));
  }
}

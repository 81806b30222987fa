/**
 * The control plane's state and decision log in etcd, for several control nodes (docs/failover.md,
 * "The control plane"). Keys under the prefix:
 *
 * - `state`: the committed state, with the last event's seq (`{ version, state, lastSeq }`);
 * - `events/<seq, 12 digits>`: one event of the decision log each, in order;
 * - `ids/<event id>`: the seq of an event, to find a switch by its id.
 *
 * A commit is one transaction that succeeds only if the leader key is still held by this node's
 * lease and nobody wrote the state since this node read it: a deposed leader's commit is refused
 * (NotLeaderError) and changes nothing, and the epoch in `state` rises by exactly one per switch.
 * The log keeps its latest `retainEvents` events.
 */
import type { Etcd3 } from 'etcd3';
import type { IOperation } from 'etcd3/lib/builder.js';
import { z } from 'zod';
import {
  type ControlStore,
  type EventQuery,
  type FailoverEvent,
  FailoverStoreError,
  type NewEvent,
  NotLeaderError,
  type PersistedState,
  type StoredControl,
  type SwitchEvent,
} from '../failover/index.js';
import { type EtcdElection, parseLeader } from './election.js';

/** Events the log keeps in etcd. Default 10,000 (a few MB). */
export const DEFAULT_RETAIN_EVENTS = 10_000;

const storedSchema = z.object({
  version: z.literal(1),
  state: z.looseObject({ activeRegion: z.string(), epoch: z.number().int().min(0) }),
  lastSeq: z.number().int().min(0),
});

const seqKey = (seq: number) => String(seq).padStart(12, '0');

export interface EtcdControlStoreOptions {
  readonly client: Etcd3;
  /** Ends in `/`; the same prefix as the election's. */
  readonly prefix: string;
  /** The election whose lease fences every write. */
  readonly election: EtcdElection;
  readonly retainEvents?: number;
  /** Deadline of one etcd request, ms. Default 2,000. */
  readonly requestTimeoutMs?: number;
}

export class EtcdControlStore implements ControlStore {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #election: EtcdElection;
  readonly #retain: number;
  readonly #requestTimeoutMs: number;
  /** The state's mod revision when this node last read it (0: absent), and the last seq then. */
  #base: { revision: string; lastSeq: number } = { revision: '0', lastSeq: 0 };

  constructor(options: EtcdControlStoreOptions) {
    this.#client = options.client;
    this.#prefix = options.prefix;
    this.#election = options.election;
    this.#retain = options.retainEvents ?? DEFAULT_RETAIN_EVENTS;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 2000;
  }

  get #stateKey(): string {
    return `${this.#prefix}state`;
  }

  #eventKey(seq: number): string {
    return `${this.#prefix}events/${seqKey(seq)}`;
  }

  #idKey(id: string): string {
    return `${this.#prefix}ids/${id}`;
  }

  #options(): { deadline: Date } {
    return { deadline: new Date(Date.now() + this.#requestTimeoutMs) };
  }

  async load(): Promise<StoredControl> {
    const answer = await this.#client.get(this.#stateKey).options(this.#options()).exec();
    const kv = answer.kvs[0];
    if (!kv) {
      this.#base = { revision: '0', lastSeq: 0 };
      return { state: undefined, lastSwitch: undefined };
    }
    const stored = this.#parseState(kv.value.toString());
    this.#base = { revision: String(kv.mod_revision), lastSeq: stored.lastSeq };
    const state = stored.state as unknown as PersistedState;
    const lastSwitch = state.lastSwitchId === null ? undefined : await this.getEvent(state.lastSwitchId);
    return { state, lastSwitch: lastSwitch?.type === 'switch' ? lastSwitch : undefined };
  }

  #parseState(text: string): z.infer<typeof storedSchema> {
    try {
      return storedSchema.parse(JSON.parse(text));
    } catch (error) {
      throw new FailoverStoreError(`the control state in etcd (${this.#stateKey}) is not iotdr's`, error);
    }
  }

  /** The fence: the leader key is held by this node's lease. */
  #lease(): string {
    const lease = this.#election.leaseId();
    if (lease === undefined || !this.#election.isLeader())
      throw new NotLeaderError(this.#election.node, this.#election.leader());
    return lease;
  }

  async commit(state: PersistedState, events: NewEvent[]): Promise<FailoverEvent[]> {
    const lease = this.#lease();
    const base = this.#base;
    const out: FailoverEvent[] = events.map(
      (event, i) => ({ ...event, seq: base.lastSeq + 1 + i }) as FailoverEvent,
    );
    const lastSeq = base.lastSeq + out.length;
    const ops: IOperation[] = [
      this.#client.put(this.#stateKey).value(JSON.stringify({ version: 1, state, lastSeq })),
    ];
    for (const event of out) {
      ops.push(this.#client.put(this.#eventKey(event.seq)).value(JSON.stringify(event)));
      ops.push(this.#client.put(this.#idKey(event.id)).value(String(event.seq)));
    }
    const answer = await this.#client
      .if(this.#election.leaderKey, 'Lease', '==', lease)
      .and(this.#stateKey, 'Mod', '==', base.revision)
      .then(...ops)
      .else(this.#client.get(this.#election.leaderKey))
      .options(this.#options())
      .commit();
    if (!answer.succeeded) {
      const kv = answer.responses[0]?.response_range?.kvs?.[0];
      const holder = parseLeader(kv?.value?.toString());
      throw new NotLeaderError(
        this.#election.node,
        holder && holder.lease !== lease ? holder : null,
        new Error('the commit was fenced: the leader key is not held by this lease, or the state changed'),
      );
    }
    this.#base = { revision: String(answer.header.revision), lastSeq };
    await this.#trim(lastSeq);
    return out;
  }

  /**
   * Drops every event older than the retained window, with its id key (best effort: what a failed
   * trim leaves is dropped by the next one, which starts from the first event).
   */
  async #trim(lastSeq: number): Promise<void> {
    const end = lastSeq - this.#retain;
    if (end < 1) return;
    const range = { start: this.#eventKey(1), end: this.#eventKey(end + 1) };
    try {
      const old = await this.#client.getAll().inRange(range).options(this.#options()).strings();
      if (Object.keys(old).length === 0) return;
      const ops: IOperation[] = [this.#client.delete().inRange(range)];
      for (const body of Object.values(old)) {
        const id = (JSON.parse(body) as { id?: unknown }).id;
        if (typeof id === 'string') ops.push(this.#client.delete().key(this.#idKey(id)));
      }
      await this.#client
        .if(this.#election.leaderKey, 'Lease', '==', this.#lease())
        .then(...ops)
        .options(this.#options())
        .commit();
    } catch {
      // dropped by the next commit's trim
    }
  }

  async updateSwitch(event: SwitchEvent): Promise<void> {
    const lease = this.#lease();
    const answer = await this.#client
      .if(this.#election.leaderKey, 'Lease', '==', lease)
      .and(this.#idKey(event.id), 'Value', '==', String(event.seq))
      .then(this.#client.put(this.#eventKey(event.seq)).value(JSON.stringify(event)))
      .options(this.#options())
      .commit();
    if (!answer.succeeded) throw new NotLeaderError(this.#election.node, this.#election.leader());
  }

  async getEvent(id: string): Promise<FailoverEvent | undefined> {
    const seq = await this.#client.get(this.#idKey(id)).options(this.#options()).string();
    if (seq === null) return undefined;
    const body = await this.#client
      .get(this.#eventKey(Number(seq)))
      .options(this.#options())
      .string();
    return body === null ? undefined : (JSON.parse(body) as FailoverEvent);
  }

  async events(query: EventQuery): Promise<FailoverEvent[]> {
    const out: FailoverEvent[] = [];
    let from = this.#eventKey((query.after ?? 0) + 1);
    const end = `${this.#prefix}events0`; // just past `events/…`
    // Filtering by type reads pages until the page is full or the log ends.
    while (out.length < query.limit) {
      const page = await this.#client
        .getAll()
        .inRange({ start: from, end })
        .sort('Key', 'Ascend')
        .limit(Math.max(query.limit, 100))
        .options(this.#options())
        .strings();
      const entries = Object.entries(page).sort(([a], [b]) => (a < b ? -1 : 1));
      for (const [, body] of entries) {
        const event = JSON.parse(body) as FailoverEvent;
        if (query.type === undefined || event.type === query.type) out.push(event);
        if (out.length === query.limit) break;
      }
      const last = entries[entries.length - 1];
      if (!last || entries.length < Math.max(query.limit, 100)) break;
      from = `${last[0]}\0`;
    }
    return out;
  }

  close(): void {}
}

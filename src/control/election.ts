/**
 * Leader election of the control nodes through etcd (docs/failover.md, "The control plane").
 *
 * Every node holds a lease of `leaseTtlMs` and keeps it alive. The leader is the node whose lease
 * holds the leader key: a node takes the key with a transaction that succeeds only while nobody
 * holds it (its create revision is 0), and the key goes with the lease when the lease ends. Every
 * write the leader commits is fenced by the same lease (src/control/store.ts): once etcd has let
 * the lease run out, the old leader's writes are refused.
 *
 * A node also stops deciding by its own clock before etcd can let its lease run out: etcd counts
 * the TTL from when it received the last keepalive, which came after the node sent it, so the lease
 * holds at least until send time + TTL. The node leads only until that time minus a safety margin,
 * measured on a monotonic clock. A leader cut off from etcd therefore stops before a new leader can
 * be elected, and two leaders never decide at the same time.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../common/index.js';
import type { Leadership, LeaderView } from '../failover/index.js';

/** A control node's lease in etcd lives this long without a keepalive, ms. Default 5,000. */
export const DEFAULT_LEASE_TTL_MS = 5000;
/** The shortest lease: etcd grants whole seconds, and no fewer than its own minimum. */
export const MIN_LEASE_TTL_MS = 2000;

export interface EtcdElectionOptions {
  readonly client: Etcd3;
  /** The control plane's keys in etcd, ending in `/`; the leader key is `<prefix>leader`. */
  readonly prefix: string;
  readonly node: string;
  /** Base URL of this node's control API, published in the leader key for the others to forward to. */
  readonly url: string;
  /** Rounded up to whole seconds for etcd. */
  readonly leaseTtlMs?: number;
  /** How often a node that does not lead looks at the leader key, ms. Default TTL / 10, 100–500. */
  readonly pollMs?: number;
  /** Deadline of one etcd request, ms. Default TTL / 5. */
  readonly requestTimeoutMs?: number;
  /** Wall clock for `since`; monotonic clock for the lease's validity. */
  readonly now?: () => number;
  readonly monotonic?: () => number;
  readonly logger?: Logger;
}

type LeaderRecord = { node: string; url: string; since: number; lease: string; leaseTtlMs: number };

/** The leader key's value, as written by `EtcdElection`; undefined for anything else. */
export function parseLeader(text: string | null | undefined): LeaderRecord | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as Partial<LeaderRecord>;
    if (
      typeof v.node === 'string' &&
      typeof v.url === 'string' &&
      typeof v.since === 'number' &&
      typeof v.lease === 'string' &&
      typeof v.leaseTtlMs === 'number'
    )
      return v as LeaderRecord;
  } catch {
    // not a leader record
  }
  return undefined;
}

export class EtcdElection implements Leadership {
  readonly node: string;
  readonly leaderKey: string;
  readonly leaseTtlMs: number;
  readonly #client: Etcd3;
  #url: string;
  readonly #pollMs: number;
  readonly #requestTimeoutMs: number;
  /** Stop deciding this long before the lease could end at etcd, ms. */
  readonly #marginMs: number;
  readonly #now: () => number;
  readonly #monotonic: () => number;
  readonly #logger: Logger | undefined;
  readonly #listeners = new Set<(leading: boolean) => void>();
  /** The lease this node holds (decimal), and until when (monotonic ms) it surely holds at etcd. */
  #lease: { id: string; validUntil: number; keptAt: number } | undefined;
  #leading = false;
  #leader: LeaderView | null = null;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #lastError: string | null = null;
  /** Fires when the lease stops holding by this node's clock, so the step down happens then, not at the next poll. */
  #expiry: NodeJS.Timeout | undefined;

  constructor(options: EtcdElectionOptions) {
    this.node = options.node;
    this.#client = options.client;
    this.#url = options.url;
    this.leaderKey = `${options.prefix}leader`;
    this.leaseTtlMs =
      Math.ceil(Math.max(MIN_LEASE_TTL_MS, options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS) / 1000) * 1000;
    this.#pollMs = options.pollMs ?? Math.min(500, Math.max(100, Math.round(this.leaseTtlMs / 10)));
    this.#requestTimeoutMs = options.requestTimeoutMs ?? Math.round(this.leaseTtlMs / 5);
    this.#marginMs = Math.max(250, Math.round(this.leaseTtlMs / 10));
    this.#now = options.now ?? Date.now;
    this.#monotonic = options.monotonic ?? (() => performance.now());
    this.#logger = options.logger;
  }

  isLeader(): boolean {
    return this.#leading && this.#holds();
  }

  leader(): LeaderView | null {
    return this.#leader;
  }

  /** This node's lease id while it has one (the store fences its writes on it). */
  leaseId(): string | undefined {
    return this.#lease?.id;
  }

  /** The last error talking to etcd, while the latest attempt failed. */
  lastError(): string | null {
    return this.#lastError;
  }

  onChange(listener: (leading: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The URL published in the leader key; set before `start` when the API's port was only known then. */
  setUrl(url: string): void {
    this.#url = url;
  }

  /** Campaigns, then keeps the lease alive (or watches the leader) until `stop`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stops campaigning; a leader hands over at once by revoking its lease (the key goes with it). */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#expiry);
    this.#wake?.();
    await this.#loop;
    const lease = this.#lease;
    this.#lease = undefined;
    this.#setLeading(false, 'stopped');
    if (lease) {
      try {
        await this.#client.leaseClient.leaseRevoke({ ID: lease.id }, this.#deadline());
      } catch {
        // it runs out on its own within a TTL
      }
    }
  }

  /** Holds the lease by the monotonic clock, with the margin. */
  #holds(): boolean {
    return this.#lease !== undefined && this.#monotonic() < this.#lease.validUntil - this.#marginMs;
  }

  #deadline(): { deadline: Date } {
    return { deadline: new Date(Date.now() + this.#requestTimeoutMs) };
  }

  async #run(): Promise<void> {
    while (this.#running) {
      try {
        await this.#step();
        if (this.#lastError !== null) this.#logger?.info({ node: this.node }, 'etcd answers again');
        this.#lastError = null;
      } catch (error) {
        const message = (error as Error).message;
        if (this.#lastError === null)
          this.#logger?.warn({ node: this.node, err: error }, 'cannot reach etcd; trying again');
        this.#lastError = message;
      }
      // A leader past its margin stops deciding now, whatever etcd says later.
      if (this.#leading && !this.#holds()) {
        this.#setLeading(false, 'its lease could have run out at etcd (no keepalive answered in time)');
        this.#lease = undefined;
      }
      if (!this.#running) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#pollMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  async #step(): Promise<void> {
    if (!this.#lease || !this.#holds()) await this.#grant();
    // Five keepalives per TTL: a few can fail (a member cut off) before the margin is reached.
    else if (this.#monotonic() - this.#lease.keptAt >= this.leaseTtlMs / 5) await this.#keepAlive();
    if (!this.#lease) return;
    const lease = this.#lease.id;
    const record: LeaderRecord = {
      node: this.node,
      url: this.#url,
      since: this.#now(),
      lease,
      leaseTtlMs: this.leaseTtlMs,
    };
    // Take the key while nobody holds it; else read who does.
    const answer = await this.#client
      .if(this.leaderKey, 'Create', '==', 0)
      .then(this.#client.put(this.leaderKey).value(JSON.stringify(record)).lease(lease))
      .else(this.#client.get(this.leaderKey))
      .options(this.#deadline())
      .commit();
    if (answer.succeeded) {
      this.#leader = record;
      if (this.#holds()) this.#setLeading(true, 'elected');
      return;
    }
    const kv = answer.responses[0]?.response_range?.kvs?.[0];
    const held = parseLeader(kv?.value?.toString());
    if (held && kv?.lease?.toString() === lease) {
      // Ours, taken earlier: still leading while the lease holds.
      this.#leader = held;
      if (this.#holds()) this.#setLeading(true, 'elected');
      return;
    }
    this.#leader = held ?? null;
    this.#setLeading(false, held ? `${held.node} leads` : 'the leader key is not ours');
  }

  async #grant(): Promise<void> {
    if (this.#lease) this.#setLeading(false, 'its lease could have run out at etcd');
    this.#lease = undefined;
    const sentAt = this.#monotonic();
    const ttlSeconds = this.leaseTtlMs / 1000;
    const granted = await this.#client.leaseClient.leaseGrant({ TTL: ttlSeconds }, this.#deadline());
    const ttl = Number(granted.TTL) * 1000;
    this.#lease = { id: String(granted.ID), validUntil: sentAt + ttl, keptAt: sentAt };
  }

  async #keepAlive(): Promise<void> {
    const lease = this.#lease;
    if (!lease) return;
    const sentAt = this.#monotonic();
    const ttl = await this.#keepAliveOnce(lease.id);
    if (this.#lease !== lease) return;
    if (ttl <= 0) {
      // etcd let it run out: whatever this node thought, it no longer leads.
      this.#lease = undefined;
      this.#setLeading(false, 'etcd says its lease ran out');
      return;
    }
    lease.validUntil = sentAt + ttl;
    lease.keptAt = sentAt;
    this.#armExpiry();
  }

  /** One keepalive on a stream of its own, under the request deadline; resolves the TTL granted, ms. */
  #keepAliveOnce(id: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#client.leaseClient
        .leaseKeepAlive(this.#deadline())
        .then((stream) => {
          stream.on('data', (res: { TTL: string }) => {
            stream.end();
            resolve(Number(res.TTL) * 1000);
          });
          stream.on('error', reject);
          stream.write({ ID: id });
        })
        .catch(reject);
    });
  }

  /** While leading, steps down the moment the lease could end at etcd (minus the margin). */
  #armExpiry(): void {
    clearTimeout(this.#expiry);
    if (!this.#leading || !this.#lease) return;
    const lease = this.#lease;
    const inMs = Math.max(0, lease.validUntil - this.#marginMs - this.#monotonic());
    this.#expiry = setTimeout(() => {
      if (!this.#leading || this.#holds()) return this.#armExpiry();
      this.#setLeading(false, 'its lease could have run out at etcd (no keepalive answered in time)');
      if (this.#lease === lease) this.#lease = undefined;
    }, inMs + 1);
    this.#expiry.unref?.();
  }

  #setLeading(leading: boolean, why: string): void {
    if (this.#leading === leading) {
      if (leading) this.#armExpiry();
      return;
    }
    this.#leading = leading;
    if (leading) this.#armExpiry();
    else clearTimeout(this.#expiry);
    if (leading) this.#logger?.warn({ node: this.node, lease: this.#lease?.id, why }, 'elected leader');
    else this.#logger?.warn({ node: this.node, why }, 'not the leader any more');
    for (const listener of this.#listeners) listener(leading);
  }
}

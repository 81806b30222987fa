import { Resolver } from 'node:dns/promises';
import type { Clock } from '../common/index.js';

/** Where `mqtt.<zone>` points: one address, until `expiresAt` (ms since the epoch). */
export interface Destination {
  readonly address: string;
  readonly family: 4 | 6;
  readonly expiresAt: number;
  /** From `_iotdr.<name>` TXT (`region=<name> epoch=<n>`), when it answered. */
  readonly region?: string;
  readonly epoch?: number;
}

const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND', 'ENONAME']);

/** An address and when it stops being usable (ms since the epoch). */
interface CachedAddress {
  readonly address: string;
  readonly expiresAt: number;
}

/**
 * Answers for the periodic DNS re-check, shared by the devices given the same cache (the devices
 * of one gateway process or simulator thread), as devices behind one caching resolver share its
 * answers: each is used until its TTL runs out and never after, and devices that re-check at once
 * share one question. The connect and the watch after a failure still ask DNS themselves.
 */
export class DnsCache {
  readonly #answers = new Map<string, CachedAddress>();
  readonly #asking = new Map<string, Promise<CachedAddress>>();

  /** The cached address for `key` while its TTL runs; else the answer to `ask`, shared with whoever asks meanwhile. */
  async address(key: string, now: number, ask: () => Promise<CachedAddress>): Promise<string> {
    const known = this.#answers.get(key);
    if (known !== undefined && now < known.expiresAt) return known.address;
    let asking = this.#asking.get(key);
    if (asking === undefined) {
      asking = ask().finally(() => this.#asking.delete(key));
      this.#asking.set(key, asking);
    }
    return (await asking).address;
  }

  /** Keeps an answer a device got on its own, when it is fresher than the one kept. */
  remember(key: string, answer: CachedAddress): void {
    const known = this.#answers.get(key);
    if (known === undefined || known.expiresAt < answer.expiresAt) this.#answers.set(key, answer);
  }
}

/**
 * Resolves the broker's name with its TTL and keeps the answer no longer than that: `current()`
 * answers from the cache only while the TTL runs, and asks DNS again after.
 */
export class DestinationResolver {
  readonly #resolver: Resolver;
  readonly #name: string;
  readonly #clock: Clock;
  readonly #shared: { cache: DnsCache; key: string } | undefined;
  #cached: Destination | undefined;

  constructor(options: {
    name: string;
    servers?: readonly string[];
    timeoutMs: number;
    clock: Clock;
    /** Answers for `recheck()` shared with other devices. */
    cache?: DnsCache;
  }) {
    // Two tries: a query lost in a burst is asked again rather than failing the connect attempt.
    this.#resolver = new Resolver({ timeout: options.timeoutMs, tries: 2 });
    if (options.servers) this.#resolver.setServers([...options.servers]);
    this.#name = options.name;
    this.#clock = options.clock;
    this.#shared = options.cache && {
      cache: options.cache,
      // The same name asked of other servers may have another answer.
      key: `${options.name} ${options.servers?.join(',') ?? 'system'}`,
    };
  }

  /** The cached destination while its TTL runs, else a fresh one. */
  async current(): Promise<Destination> {
    const cached = this.#cached;
    if (cached && this.#clock.now() < cached.expiresAt) return cached;
    return this.fresh();
  }

  /** Asks DNS now (A, then AAAA when there is no A), and caches the answer for its TTL. */
  async fresh(): Promise<Destination> {
    this.#cached = undefined;
    const asked = this.#clock.now();
    const answer = await this.#lookup();
    const txt = await this.#txt();
    const destination: Destination = {
      address: answer.address,
      family: answer.family,
      // Counted from when the question was asked: the answer cannot be fresher than that.
      expiresAt: asked + answer.ttl * 1000,
      ...txt,
    };
    this.#cached = destination;
    this.#shared?.cache.remember(this.#shared.key, destination);
    return destination;
  }

  /**
   * The address for the periodic re-check: with a shared cache, the answer it holds while its TTL
   * runs (asked by this device or another), else asked now; without one, asked now.
   */
  async recheck(): Promise<string> {
    const shared = this.#shared;
    if (shared === undefined) return this.address();
    return shared.cache.address(shared.key, this.#clock.now(), async () => {
      const asked = this.#clock.now();
      const answer = await this.#lookup();
      const cached = { address: answer.address, expiresAt: asked + answer.ttl * 1000 };
      shared.cache.remember(shared.key, cached);
      return cached;
    });
  }

  /** Asks DNS for the address alone (no TXT, nothing cached): is the name still pointing there? */
  async address(): Promise<string> {
    return (await this.#lookup()).address;
  }

  /** The name's first address with its TTL: A, then AAAA when there is no A. */
  async #lookup(): Promise<{ address: string; ttl: number; family: 4 | 6 }> {
    try {
      const a = (await this.#resolver.resolve4(this.#name, { ttl: true }))[0];
      if (a) return { ...a, family: 4 };
    } catch (error) {
      if (!NO_RECORDS.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
    const aaaa = (await this.#resolver.resolve6(this.#name, { ttl: true }))[0];
    if (aaaa) return { ...aaaa, family: 6 };
    throw Object.assign(new Error(`${this.#name} has no address`), { code: 'ENODATA' });
  }

  /** Forgets the cached answer, so the next `current()` asks DNS. */
  invalidate(): void {
    this.#cached = undefined;
  }

  async #txt(): Promise<{ region?: string; epoch?: number }> {
    try {
      const records = await this.#resolver.resolveTxt(`_iotdr.${this.#name}`);
      for (const chunks of records) {
        const fields = new Map(
          chunks
            .join('')
            .split(/\s+/)
            .map((kv) => kv.split('=', 2) as [string, string | undefined]),
        );
        const region = fields.get('region');
        const epoch = Number(fields.get('epoch'));
        if (region) return { region, ...(Number.isSafeInteger(epoch) && epoch >= 0 ? { epoch } : {}) };
      }
    } catch {
      // The TXT record is informational: without it the device still connects, naming no region.
    }
    return {};
  }

  close(): void {
    this.#resolver.cancel();
  }
}

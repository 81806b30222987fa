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

/**
 * Resolves the broker's name with its TTL and keeps the answer no longer than that: `current()`
 * answers from the cache only while the TTL runs, and asks DNS again after.
 */
export class DestinationResolver {
  readonly #resolver: Resolver;
  readonly #name: string;
  readonly #clock: Clock;
  #cached: Destination | undefined;

  constructor(options: { name: string; servers?: readonly string[]; timeoutMs: number; clock: Clock }) {
    // Two tries: a query lost in a burst is asked again rather than failing the connect attempt.
    this.#resolver = new Resolver({ timeout: options.timeoutMs, tries: 2 });
    if (options.servers) this.#resolver.setServers([...options.servers]);
    this.#name = options.name;
    this.#clock = options.clock;
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
    let answer: { address: string; ttl: number } | undefined;
    let family: 4 | 6 = 4;
    try {
      answer = (await this.#resolver.resolve4(this.#name, { ttl: true }))[0];
    } catch (error) {
      if (!NO_RECORDS.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
    if (!answer) {
      answer = (await this.#resolver.resolve6(this.#name, { ttl: true }))[0];
      family = 6;
    }
    if (!answer) throw Object.assign(new Error(`${this.#name} has no address`), { code: 'ENODATA' });
    const txt = await this.#txt();
    const destination: Destination = {
      address: answer.address,
      family,
      // Counted from when the question was asked: the answer cannot be fresher than that.
      expiresAt: asked + answer.ttl * 1000,
      ...txt,
    };
    this.#cached = destination;
    return destination;
  }

  /** Asks DNS for the address alone (no TXT, nothing cached): is the name still pointing there? */
  async address(): Promise<string> {
    let answer: string | undefined;
    try {
      answer = (await this.#resolver.resolve4(this.#name))[0];
    } catch (error) {
      if (!NO_RECORDS.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
    answer ??= (await this.#resolver.resolve6(this.#name))[0];
    if (!answer) throw Object.assign(new Error(`${this.#name} has no address`), { code: 'ENODATA' });
    return answer;
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

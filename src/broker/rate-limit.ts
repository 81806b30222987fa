import type { Clock } from '../common/index.js';

/** Addresses tracked before full (idle) buckets are dropped, so a scan of many sources cannot grow memory. */
const PRUNE_AT = 10_000;

/**
 * A token bucket per source address: `burst` connections at once, refilled at `perSecond`. Time
 * comes from the injected clock, so tests drive it.
 */
export class ConnectionRateLimiter {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perSecond: number, burst: number, clock: Clock) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#clock = clock;
  }

  /** Takes one token for `address`; false when its bucket is empty. */
  take(address: string): boolean {
    const now = this.#clock.now();
    if (this.#buckets.size >= PRUNE_AT) this.#prune(now);
    const bucket = this.#buckets.get(address) ?? { tokens: this.#burst, at: now };
    bucket.tokens = this.#refilled(bucket, now);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.#buckets.set(address, bucket);
    return allowed;
  }

  #refilled(bucket: { tokens: number; at: number }, now: number): number {
    const elapsed = Math.max(0, now - bucket.at) / 1000;
    return Math.min(this.#burst, bucket.tokens + elapsed * this.#perSecond);
  }

  #prune(now: number): void {
    for (const [address, bucket] of this.#buckets) {
      if (this.#refilled(bucket, now) >= this.#burst) this.#buckets.delete(address);
    }
  }
}

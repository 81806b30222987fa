/**
 * Exponential backoff with full jitter (delay = random(0, min(cap, base × 2^attempt))): a fleet cut
 * off at the same instant spreads its reconnects over the whole window instead of stampeding the
 * secondary in waves.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #capMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: { baseMs: number; capMs: number; random: () => number }) {
    this.#baseMs = options.baseMs;
    this.#capMs = options.capMs;
    this.#random = options.random;
  }

  /** Failed attempts since the last success. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The upper bound of the delay before attempt `n` (0-based): min(cap, base × 2^n). */
  bound(n: number): number {
    // 2^n overflows to Infinity for large n; min() keeps the cap.
    return Math.min(this.#capMs, this.#baseMs * 2 ** Math.min(n, 1024));
  }

  /** The next delay in ms, and counts the attempt. */
  next(): { attempt: number; delayMs: number; boundMs: number } {
    const attempt = this.#attempt++;
    const boundMs = this.bound(attempt);
    const r = Math.min(Math.max(this.#random(), 0), 1);
    return { attempt, delayMs: Math.floor(r * boundMs), boundMs };
  }

  reset(): void {
    this.#attempt = 0;
  }
}

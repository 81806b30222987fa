/**
 * Waiting between retries, shared by every loop that retries (replication, rules, analytics, DNS
 * followers): an abortable sleep and exponential backoff with full jitter.
 */

/** Waits `ms`, or less when `signal` aborts (then resolves, never rejects). Injected for tests. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const abortableSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** Exponential backoff with full jitter: a random delay in [0, min(max, base × 2^(attempt−1))). */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  return random() * Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

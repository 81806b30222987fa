import type { Sleep } from './types.js';

/** Defaults of an HTTP action. */
export const DEFAULT_HTTP_TIMEOUT_MS = 5000;
export const DEFAULT_HTTP_MAX_ATTEMPTS = 5;
/** Backoff before attempt n+1: base × 2^(n-1), capped, with full jitter, in ms. */
export const DEFAULT_BACKOFF_BASE_MS = 500;
export const DEFAULT_BACKOFF_MAX_MS = 30_000;

export interface Delivery {
  url: string;
  body: Buffer;
  contentType: string;
  /** The action's headers plus x-iotdr-event-id and x-iotdr-rule, so a receiver can de-duplicate. */
  headers: Record<string, string>;
  timeoutMs: number;
  maxAttempts: number;
}

export interface DeliveryOutcome {
  ok: boolean;
  attempts: number;
  lastError?: string;
}

export interface Backoff {
  baseMs: number;
  maxMs: number;
  /** [0, 1); Math.random by default. */
  random?: () => number;
}

/**
 * POSTs the body until a 2xx answer or `maxAttempts` failures; a failure is a network error, a
 * timeout or any other status (a receiver answering 4xx may be mid-deploy; the attempts are few
 * and bounded, and what still fails is dead-lettered, not dropped). `signal` ends the retries
 * (shutdown): the outcome is then a failure with what was tried.
 */
export async function deliver(
  delivery: Delivery,
  options: { sleep: Sleep; backoff: Backoff; signal: AbortSignal },
): Promise<DeliveryOutcome> {
  let lastError = 'not attempted';
  let attempts = 0;
  while (attempts < delivery.maxAttempts && !options.signal.aborted) {
    attempts++;
    try {
      const res = await fetch(delivery.url, {
        method: 'POST',
        headers: { ...delivery.headers, 'content-type': delivery.contentType },
        body: delivery.body,
        redirect: 'manual',
        signal: AbortSignal.any([options.signal, AbortSignal.timeout(delivery.timeoutMs)]),
      });
      // Read the answer so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { ok: true, attempts };
      lastError = `HTTP ${res.status}`;
    } catch (error) {
      lastError = describe(error, delivery.timeoutMs);
    }
    if (attempts < delivery.maxAttempts) {
      const cap = Math.min(options.backoff.maxMs, options.backoff.baseMs * 2 ** (attempts - 1));
      await options.sleep(Math.floor(cap * (options.backoff.random ?? Math.random)()), options.signal);
    }
  }
  if (options.signal.aborted && attempts < delivery.maxAttempts)
    lastError = `${lastError}; stopped (region shutting down)`;
  return { ok: false, attempts, lastError };
}

function describe(error: unknown, timeoutMs: number): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ? `${error.message}: ${cause.code}` : error.message;
  }
  return String(error);
}

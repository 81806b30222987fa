import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { IotdrError } from '../common/index.js';
import type { Egress } from './egress.js';
import { httpAddressRefused } from './errors.js';
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
  /** The address was refused (IOTDR_RULES_HTTP_ADDRESS_REFUSED): not retried, nothing was sent. */
  refused?: boolean;
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
 * and bounded, and what still fails is dead-lettered, not dropped). An address `egress` refuses
 * ends the attempts at once: asking again would be refused again. `signal` ends the retries
 * (shutdown): the outcome is then a failure with what was tried.
 */
export async function deliver(
  delivery: Delivery,
  options: { sleep: Sleep; backoff: Backoff; signal: AbortSignal; egress: Egress },
): Promise<DeliveryOutcome> {
  let lastError = 'not attempted';
  let attempts = 0;
  while (attempts < delivery.maxAttempts && !options.signal.aborted) {
    attempts++;
    const timeout = AbortSignal.timeout(delivery.timeoutMs);
    try {
      const status = await post(delivery, options.egress, AbortSignal.any([options.signal, timeout]));
      if (status >= 200 && status < 300) return { ok: true, attempts };
      lastError = `HTTP ${status}`;
    } catch (error) {
      if (error instanceof IotdrError && error.code === 'IOTDR_RULES_HTTP_ADDRESS_REFUSED')
        return { ok: false, attempts, lastError: error.message, refused: true };
      lastError = timeout.aborted ? `timed out after ${delivery.timeoutMs} ms` : describe(error);
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

/**
 * One POST through the egress pools; resolves with the status once the answer is read (so the
 * connection can be reused). Redirects are not followed: a 3xx is an answer like any other.
 */
function post(delivery: Delivery, egress: Egress, signal: AbortSignal): Promise<number> {
  const url = new URL(delivery.url);
  const https = url.protocol === 'https:';
  // An IP literal is connected to without a lookup, so it is checked here.
  const literal = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const reason = isIP(literal) === 0 ? undefined : egress.check(literal);
  if (reason !== undefined) return Promise.reject(httpAddressRefused(reason));
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: 'POST',
        agent: https ? egress.https : egress.http,
        headers: {
          ...delivery.headers,
          'content-type': delivery.contentType,
          'content-length': delivery.body.length,
        },
        signal,
      },
      (res) => {
        res.on('error', reject);
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('close', () => {
          if (!res.complete) reject(new Error('the answer ended early'));
        });
        res.resume();
      },
    );
    req.on('error', reject);
    req.end(delivery.body);
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code && !error.message.includes(code)) return `${error.message}: ${code}`;
    return error.message;
  }
  return String(error);
}

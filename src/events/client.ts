import { type RawAnswer, sendRequest } from '../http/index.js';
import type { BusEvent, ReadResult } from './types.js';

export interface ReadEventsOptions {
  /** First offset wanted (inclusive); default 0 = the oldest kept. */
  from?: number;
  /** Events per request (default 100, at most 1000). */
  limit?: number;
  /** Long-poll wait per request, in ms (default 20000, at most 30000). */
  waitMs?: number;
  /** Ends the iteration (the pending request is aborted). */
  signal?: AbortSignal;
  /** Called when retention removed events the reader had not read yet. */
  onGap?: (gap: { requested: number; firstOffset: number }) => void;
  /** Stop once the log is read to its end instead of waiting for more (default false). */
  untilCaughtUp?: boolean;
  /** The platform's CA (PEM) to verify the region's HTTPS with (`<state>/pki/ca.pem`). */
  ca?: string;
}

/**
 * Follows a region's event bus over the long-poll API: every event from `from` on, in offset
 * order, then each new one as it is appended. Throws on an HTTP error (with the problem's code).
 */
export async function* readEvents(
  baseUrl: string,
  token: string,
  options: ReadEventsOptions = {},
): AsyncGenerator<BusEvent, void, undefined> {
  let from = options.from ?? 0;
  const limit = options.limit ?? 100;
  const waitMs = options.untilCaughtUp ? 0 : (options.waitMs ?? 20_000);
  while (!options.signal?.aborted) {
    const url = `${baseUrl}/v1/events?from=${from}&limit=${limit}&wait=${waitMs}`;
    let res: RawAnswer;
    try {
      res = await sendRequest(url, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}` },
        ...(options.ca === undefined ? {} : { trust: options.ca }),
        signal: options.signal ?? new AbortController().signal,
      });
    } catch (error) {
      if (options.signal?.aborted) return;
      throw error;
    }
    const body = JSON.parse(res.text) as ReadResult & { code?: string; detail?: string };
    if (res.status < 200 || res.status >= 300) {
      throw Object.assign(
        new Error(`GET /v1/events: ${res.status} ${body.code ?? ''} ${body.detail ?? ''}`),
        {
          status: res.status,
          code: body.code,
        },
      );
    }
    if (body.gap) options.onGap?.(body.gap);
    for (const event of body.events) yield event;
    from = body.next;
    if (options.untilCaughtUp && body.events.length === 0) return;
  }
}

import { z } from 'zod';
import {
  abortableSleep,
  backoffMs,
  type Clock,
  type Logger,
  type Sleep,
  systemClock,
} from '../common/index.js';
import type { ControlClient } from '../failover/index.js';
import { ControlReadError } from './errors.js';
import type { AnalyticsStore } from './store.js';
import type { TimelineEntry } from './types.js';

/** How often the decision log is polled, in ms. */
export const DEFAULT_MIRROR_INTERVAL_MS = 500;
/** Entries per request (the control API allows 500). */
export const MIRROR_PAGE = 500;

/** How the mirror of the controller's decision log is doing. A discriminated union on `type`. */
export type MirrorState =
  | { type: 'starting' }
  | { type: 'following' }
  | { type: 'unreachable'; since: number; error: string };

export interface MirrorStatus {
  /** The control node the mirror reads from: the last that answered (the first listed, at first). */
  readonly controlUrl: string;
  readonly state: MirrorState;
  /** The highest seq mirrored so far (0 when none). */
  readonly lastSeq: number;
  readonly lastContactAt: number | null;
}

export interface ControlMirrorOptions {
  /**
   * Every control node, with the analytics token (reader) on plain loopback links or analytics'
   * site agent for each node over mutual TLS: the log is read from whichever node answers.
   */
  control: ControlClient;
  store: AnalyticsStore;
  /** Poll interval, in ms. Default 500. */
  intervalMs?: number;
  /** A request that takes longer fails, in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Retry delays after a failure, in ms (doubling, full jitter). Defaults 200 and 5000. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  clock?: Clock;
  sleep?: Sleep;
  random?: () => number;
  logger?: Logger;
}

const page = z.object({
  items: z.array(
    z.looseObject({ seq: z.number().int().positive(), type: z.string().min(1), at: z.number() }),
  ),
  next: z.number().int().optional(),
});

/**
 * Mirrors `iotdr control`'s decision log (`GET /v1/failover/events`) into the analytics store:
 * the failover timeline and the health history survive the controller being away, and the
 * dashboard reads them from one place. Every control node serves the same committed log, so it is
 * read from whichever answers. Follows from the highest stored seq, so a restart resumes.
 */
export class ControlMirror {
  readonly #o: Required<Omit<ControlMirrorOptions, 'logger'>>;
  readonly #logger: Logger | undefined;
  readonly #stop = new AbortController();
  #lastSeq = 0;
  #lastContactAt: number | null = null;
  #failure: { since: number; error: string } | undefined;
  #running: Promise<void> | undefined;

  constructor(options: ControlMirrorOptions) {
    this.#logger = options.logger;
    this.#o = {
      control: options.control,
      store: options.store,
      intervalMs: options.intervalMs ?? DEFAULT_MIRROR_INTERVAL_MS,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      retryBaseMs: options.retryBaseMs ?? 200,
      retryMaxMs: options.retryMaxMs ?? 5000,
      clock: options.clock ?? systemClock,
      sleep: options.sleep ?? abortableSleep,
      random: options.random ?? Math.random,
    };
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#lastSeq = await this.#o.store.lastTimelineSeq();
    this.#running = this.#loop();
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  status(): MirrorStatus {
    return {
      controlUrl: this.#o.control.current.url,
      state: this.#failure
        ? { type: 'unreachable', ...this.#failure }
        : this.#lastContactAt === null
          ? { type: 'starting' }
          : { type: 'following' },
      lastSeq: this.#lastSeq,
      lastContactAt: this.#lastContactAt,
    };
  }

  /** Reads every entry after the last mirrored one now (also what each poll does). */
  async sync(): Promise<void> {
    for (;;) {
      const items = await this.#fetchPage();
      const entries: TimelineEntry[] = items.map((item) => ({
        seq: item.seq,
        type: item.type,
        at: item.at,
        event: item as Record<string, unknown>,
      }));
      await this.#o.store.appendTimeline(entries);
      const last = entries[entries.length - 1];
      if (last) this.#lastSeq = Math.max(this.#lastSeq, last.seq);
      this.#lastContactAt = this.#o.clock.now();
      this.#failure = undefined;
      if (entries.length < MIRROR_PAGE) return;
    }
  }

  async #fetchPage(): Promise<Array<{ seq: number; type: string; at: number }>> {
    const res = await this.#o.control.send({
      method: 'GET',
      path: `/v1/failover/events?after=${this.#lastSeq}&limit=${MIRROR_PAGE}`,
      headers: { accept: 'application/json' },
      timeoutMs: this.#o.requestTimeoutMs,
      signal: this.#stop.signal,
    });
    const text = res.text;
    if (res.status < 200 || res.status >= 300)
      throw new ControlReadError(`GET /v1/failover/events answered ${res.status}: ${text.slice(0, 200)}`, {
        status: res.status,
      });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (cause) {
      throw new ControlReadError('GET /v1/failover/events answered a body that is not JSON', { cause });
    }
    const parsed = page.safeParse(body);
    if (!parsed.success)
      throw new ControlReadError(
        `GET /v1/failover/events answered off the contract: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
      );
    return parsed.data.items;
  }

  async #loop(): Promise<void> {
    let attempt = 0;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        await this.sync();
        attempt = 0;
        await this.#o.sleep(this.#o.intervalMs, signal);
      } catch (error) {
        if (signal.aborted) return;
        attempt++;
        const message = error instanceof Error ? error.message : String(error);
        if (!this.#failure) this.#logger?.warn({ err: message }, 'cannot read the control decision log');
        this.#failure = { since: this.#failure?.since ?? this.#o.clock.now(), error: message };
        await this.#o.sleep(
          Math.max(
            this.#o.intervalMs,
            backoffMs(attempt, this.#o.retryBaseMs, this.#o.retryMaxMs, this.#o.random),
          ),
          signal,
        );
      }
    }
  }
}

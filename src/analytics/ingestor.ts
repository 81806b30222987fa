import type { Agent } from 'node:https';
import { z } from 'zod';
import {
  abortableSleep,
  backoffMs,
  type Clock,
  type Logger,
  type Sleep,
  systemClock,
} from '../common/index.js';
import { type BusEvent, busEventSchema } from '../events/index.js';
import { sendRequest } from '../http/index.js';
import { DEFAULT_MAX_LAG_MS } from './config.js';
import { BusReadError } from './errors.js';
import type { IngestMetrics } from './metrics.js';
import type { AnalyticsStore } from './store.js';
import type { IngestState, IngestStatus } from './types.js';

/** Events per read of a region's bus (the bus allows 1000). */
export const DEFAULT_INGEST_BATCH = 500;
/** Long-poll wait per read when caught up, in ms. */
export const DEFAULT_INGEST_WAIT_MS = 2000;
/**
 * After a read that returned less than a full batch, how long to let events gather before the
 * next, in ms: a busy region answers a few large reads a second instead of hundreds of tiny ones.
 */
export const DEFAULT_INGEST_GATHER_MS = 50;
/** First and longest retry delay after a failed read, in ms; doubling, full jitter. */
export const DEFAULT_INGEST_RETRY_BASE_MS = 200;
export const DEFAULT_INGEST_RETRY_MAX_MS = 5000;

/**
 * Where an ingestor reads one region's events from: the region's HTTP long poll
 * (`HttpBusSource`) or its JetStream stream (`JetStreamBusSource`). The ingestor owns it: it reads
 * one page at a time, commits the page with its `next` in the store, then tells the source.
 */
export interface BusSource {
  /** Events per page at most; a page with fewer lets events gather before the next read. */
  readonly batchSize: number;
  /**
   * The events from offset `from` on (0 = from the oldest kept), waiting for the first while
   * there is none (long poll). `from` is always the store's cursor: the last page's `next` once
   * it was committed, the same offset again when it was not. Rejects when the bus cannot be read
   * and when `signal` aborts. The signal is the ingestor's and aborts when it stops or closes,
   * also between reads: a source that reads ahead lets go of what it holds then.
   */
  read(from: number, signal: AbortSignal): Promise<BusPage>;
  /** The store committed `page` (its events and its `next`): the source may let it go. */
  committed?(page: BusPage): Promise<void>;
  /** Stops reading and lets the connection go. */
  close(): Promise<void>;
}

/** One read of a region's bus. */
export interface BusPage {
  /** In offset order; the bus's health probes included. */
  events: BusEvent[];
  /** The offset to read next: past every event of this page and anything passed over. */
  next: number;
  /** The region's last offset as the bus saw it, for the lag in events. */
  lastOffset: number;
  /** Retention removed offsets `requested`… before they were read: the page goes on from `firstOffset`. */
  gap?: { requested: number; firstOffset: number };
}

interface IngestorCommonOptions {
  region: string;
  store: AnalyticsStore;
  /** Lagging (unhealthy) when the oldest unread event is older than this, in ms. Default 5000. */
  maxLagMs?: number;
  /** Pause after a partial batch, letting events gather, in ms. Default 50; 0 reads again at once. */
  gatherMs?: number;
  /** Retry delays after a failed read, in ms. Defaults 200 and 5000. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  clock?: Clock;
  sleep?: Sleep;
  random?: () => number;
  logger?: Logger;
  metrics?: IngestMetrics;
}

export interface HttpBusSourceOptions {
  region: string;
  /** The region's API base URL, e.g. http://127.0.0.11:8080. */
  url: string;
  /** Bearer token with the reader role (the analytics token), on plain loopback links. */
  token?: string;
  /** Analytics' site agent (mutual TLS): the peer knows analytics by its site certificate. */
  agent?: Agent;
  /** Events per read. Default 500 (at most 1000). */
  batchSize?: number;
  /** Long-poll wait when caught up, in ms. Default 2000. */
  waitMs?: number;
  /** A read that takes longer than waitMs + this fails, in ms. Default 5000. */
  requestTimeoutMs?: number;
}

/**
 * Options of an ingestor: the region's HTTP long poll (`url`, `token` or `agent`, `batchSize`,
 * `waitMs`, `requestTimeoutMs`), or a `source` built by the caller (the ingestor closes it).
 */
export type RegionIngestorOptions = IngestorCommonOptions &
  (
    | (Omit<HttpBusSourceOptions, 'region'> & { source?: undefined })
    | {
        source: BusSource;
        url?: undefined;
        token?: undefined;
        agent?: undefined;
        batchSize?: undefined;
        waitMs?: undefined;
        requestTimeoutMs?: undefined;
      }
  );

const readAnswer = z.object({
  events: z.array(busEventSchema),
  next: z.number().int().nonnegative(),
  firstOffset: z.number().int().nonnegative(),
  lastOffset: z.number().int().nonnegative(),
  gap: z.object({ requested: z.number().int(), firstOffset: z.number().int() }).optional(),
});

function messageOf(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
  }
  return String(error);
}

/** The region's long poll, `GET {url}/v1/events?from=&limit=&wait=`. */
export class HttpBusSource implements BusSource {
  readonly batchSize: number;
  readonly #region: string;
  readonly #url: string;
  readonly #token: string | undefined;
  readonly #agent: Agent | undefined;
  readonly #waitMs: number;
  readonly #requestTimeoutMs: number;

  constructor(options: HttpBusSourceOptions) {
    this.#region = options.region;
    this.#url = options.url.replace(/\/+$/, '');
    this.#token = options.token;
    this.#agent = options.agent;
    this.batchSize = options.batchSize ?? DEFAULT_INGEST_BATCH;
    this.#waitMs = options.waitMs ?? DEFAULT_INGEST_WAIT_MS;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 5000;
  }

  async read(from: number, wake: AbortSignal): Promise<BusPage> {
    const token = this.#token;
    const signal = AbortSignal.any([wake, AbortSignal.timeout(this.#waitMs + this.#requestTimeoutMs)]);
    const res = await sendRequest(
      `${this.#url}/v1/events?from=${from}&limit=${this.batchSize}&wait=${this.#waitMs}`,
      {
        method: 'GET',
        headers: {
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          accept: 'application/json',
        },
        ...(this.#agent === undefined ? {} : { trust: this.#agent }),
        signal,
      },
    );
    const text = res.text;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (cause) {
      throw new BusReadError(this.#region, `answered ${res.status} with a body that is not JSON`, {
        status: res.status,
        cause,
      });
    }
    if (res.status < 200 || res.status >= 300) {
      const p = body as { code?: unknown; detail?: unknown };
      throw new BusReadError(
        this.#region,
        `GET /v1/events answered ${res.status} ${String(p.code ?? '')} ${String(p.detail ?? '')}`.trim(),
        {
          status: res.status,
          ...(typeof p.code === 'string' ? { code: p.code } : {}),
        },
      );
    }
    const parsed = readAnswer.safeParse(body);
    if (!parsed.success)
      throw new BusReadError(
        this.#region,
        `GET /v1/events answered off the contract: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
      );
    const { events, next, lastOffset, gap } = parsed.data;
    return { events, next, lastOffset, ...(gap === undefined ? {} : { gap }) };
  }

  async close(): Promise<void> {}
}

/**
 * Follows one region's event bus from the offset the store persisted, through its source (the
 * HTTP long poll by default), and hands every page to the store in one transaction with the next
 * offset. Failures are retried for as long as it runs (backoff with full jitter) and show as
 * `unreachable`; `stop(reason)` really stops reading (fault injection) until `resume()`.
 */
export class RegionIngestor {
  readonly region: string;
  readonly #o: Required<Omit<IngestorCommonOptions, 'region' | 'logger' | 'metrics'>>;
  readonly #source: BusSource;
  readonly #logger: Logger | undefined;
  readonly #metrics: IngestMetrics | undefined;
  #nextOffset = 0;
  #lastOffset: number | null = null;
  #lagEvents: number | null = null;
  #lagMs: number | null = null;
  #lastContactAt: number | null = null;
  #read = 0;
  #duplicates = 0;
  #failure: { since: number; error: string } | undefined;
  #stopped: { since: number; reason: string } | undefined;
  #wake: AbortController = new AbortController();
  #resumed: { promise: Promise<void>; resolve: () => void } | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: RegionIngestorOptions) {
    this.region = options.region;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#source =
      options.source ??
      new HttpBusSource({
        region: options.region,
        url: options.url,
        ...(options.token === undefined ? {} : { token: options.token }),
        ...(options.agent === undefined ? {} : { agent: options.agent }),
        ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
        ...(options.waitMs === undefined ? {} : { waitMs: options.waitMs }),
        ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
      });
    this.#o = {
      store: options.store,
      maxLagMs: options.maxLagMs ?? DEFAULT_MAX_LAG_MS,
      gatherMs: options.gatherMs ?? DEFAULT_INGEST_GATHER_MS,
      retryBaseMs: options.retryBaseMs ?? DEFAULT_INGEST_RETRY_BASE_MS,
      retryMaxMs: options.retryMaxMs ?? DEFAULT_INGEST_RETRY_MAX_MS,
      clock: options.clock ?? systemClock,
      sleep: options.sleep ?? abortableSleep,
      random: options.random ?? Math.random,
    };
  }

  /** Loads the persisted position and starts following; resolves once reading has begun. */
  async start(): Promise<void> {
    if (this.#running) return;
    const cursor = await this.#o.store.cursor(this.region);
    this.#nextOffset = cursor.nextOffset;
    this.#read = cursor.read;
    this.#duplicates = cursor.duplicates;
    this.#running = this.#loop();
  }

  /** Stops reading this region (the batch being committed, if any, completes first). */
  stop(reason: string): IngestStatus {
    if (!this.#closed) {
      this.#stopped = { since: this.#stopped?.since ?? this.#o.clock.now(), reason };
      this.#wake.abort();
      this.#logger?.warn({ region: this.region, reason }, 'ingestion stopped');
    }
    return this.status();
  }

  /** Reads again from where it stopped. */
  resume(): IngestStatus {
    if (this.#stopped) {
      this.#stopped = undefined;
      this.#failure = undefined;
      this.#resumed?.resolve();
      this.#resumed = undefined;
      this.#logger?.info({ region: this.region }, 'ingestion resumed');
    }
    return this.status();
  }

  /** Ends reading for good (process stop) and closes the source. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake.abort();
    this.#resumed?.resolve();
    await this.#running;
    await this.#source.close();
  }

  state(): IngestState {
    if (this.#stopped) return { type: 'stopped', ...this.#stopped };
    if (this.#failure) return { type: 'unreachable', ...this.#failure };
    if (this.#lastContactAt === null) return { type: 'starting' };
    const lagMs = this.#lagMs ?? 0;
    return lagMs > this.#o.maxLagMs ? { type: 'lagging', lagMs } : { type: 'ingesting' };
  }

  status(): IngestStatus {
    const state = this.state();
    return {
      region: this.region,
      state,
      nextOffset: this.#nextOffset,
      lastOffset: this.#lastOffset,
      lagEvents: this.#lagEvents,
      lagMs: this.#lagMs,
      lastContactAt: this.#lastContactAt,
      read: this.#read,
      duplicates: this.#duplicates,
      healthy: state.type === 'ingesting',
    };
  }

  async #loop(): Promise<void> {
    let attempt = 0;
    while (!this.#closed) {
      if (this.#stopped) {
        this.#resumed ??= (() => {
          let resolve = () => {};
          const promise = new Promise<void>((r) => {
            resolve = r;
          });
          return { promise, resolve };
        })();
        await this.#resumed.promise;
        continue;
      }
      if (this.#wake.signal.aborted) this.#wake = new AbortController();
      const wake = this.#wake;
      try {
        const read = await this.#readOnce(wake.signal);
        attempt = 0;
        if (read > 0 && read < this.#source.batchSize && this.#o.gatherMs > 0)
          await this.#o.sleep(this.#o.gatherMs, wake.signal);
      } catch (error) {
        if (this.#closed || this.#stopped) continue;
        attempt++;
        const message = messageOf(error);
        if (!this.#failure)
          this.#logger?.warn({ region: this.region, err: message }, 'cannot read the region bus');
        this.#failure = { since: this.#failure?.since ?? this.#o.clock.now(), error: message };
        await this.#o.sleep(
          backoffMs(attempt, this.#o.retryBaseMs, this.#o.retryMaxMs, this.#o.random),
          wake.signal,
        );
      }
    }
  }

  /** One read and its commit; resolves with the number of events it returned. */
  async #readOnce(wake: AbortSignal): Promise<number> {
    const { clock, store } = this.#o;
    const page = await this.#source.read(this.#nextOffset, wake);
    // A stop that came while the answer was on its way: nothing of it is committed.
    if (this.#stopped || this.#closed) return 0;
    const now = clock.now();
    const first = page.events[0];
    if (page.gap) {
      const lost = page.gap.firstOffset - page.gap.requested;
      this.#logger?.warn(
        { region: this.region, ...page.gap, lost },
        'events were lost to the region bus retention before analytics read them',
      );
      this.#metrics?.gap(this.region, Math.max(0, lost));
    }
    const result = await store.ingest(this.region, page.events, page.next);
    this.#read += result.read;
    this.#duplicates += result.duplicates;
    this.#nextOffset = page.next;
    this.#lastOffset = page.lastOffset;
    this.#lagEvents = Math.max(0, page.lastOffset - page.next + 1);
    // The age of the oldest unread event is known exactly when a read returns it; once the log
    // is read to its end nothing is unread.
    if (this.#lagEvents === 0) this.#lagMs = 0;
    else if (first) this.#lagMs = Math.max(0, now - first.time);
    this.#lastContactAt = now;
    this.#failure = undefined;
    // After the state is updated, so an observer sees the status this batch left.
    this.#metrics?.batch(this.region, result);
    // Only once the batch is committed: a crash before this re-reads it, and the store's cursor
    // tells what was counted.
    await this.#source.committed?.(page);
    return page.events.length;
  }
}

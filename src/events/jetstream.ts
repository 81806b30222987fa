import { EventEmitter } from 'node:events';
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { IotdrError } from '../common/index.js';
import { DEFAULT_DUPLICATE_WINDOW_SECONDS, DEFAULT_MAX_AGE_SECONDS, DEFAULT_MAX_BYTES } from './config.js';
import { busClosed, streamRefused } from './errors.js';
import { checkEvent, MAX_WAIT_MS, readLimit } from './limits.js';
import { type BusMetrics, busMetrics } from './metrics.js';
import {
  connectNats,
  decodeEvent,
  encodeEvent,
  eventStreamName,
  eventSubject,
  type NatsLink,
  natsUnavailable,
} from './nats.js';
import type {
  AppendResult,
  BusEvent,
  BusStats,
  EventBus,
  NewEvent,
  ReadOptions,
  ReadResult,
  RetentionResult,
} from './types.js';

/** How long an append waits for the stream's acknowledgement, in ms. */
export const DEFAULT_APPEND_TIMEOUT_MS = 5000;
/** While a reader waits, how often the stream's last sequence is asked for, in ms. */
export const DEFAULT_TAIL_POLL_MS = 50;
/** How often the size and count gauges are refreshed from the stream, in ms. */
const GAUGE_INTERVAL_MS = 5000;
/** How long close() lets appends in flight finish, in ms. */
const CLOSE_DRAIN_MS = 2000;
/** Messages fetched by sequence at once by one read. */
const READ_CONCURRENCY = 256;

const NANOS_PER_MS = 1_000_000;

export interface JetStreamEventBusOptions {
  region: string;
  /** The region's NATS. */
  nats: NatsLink;
  /** Copies of each event, one per server: 1, or 3 (or 5) in a cluster. Default 1. */
  replicas?: number;
  /**
   * How long JetStream remembers an event id, in seconds (default 120): a copy of an event sent
   * again within it is not appended twice. Analytics also drops copies by id, whenever they came.
   */
  duplicateWindowSeconds?: number;
  retention?: {
    /** Events older than this go, in seconds (default 7 days; 0 = no age limit). */
    maxAgeSeconds?: number;
    /** The oldest events go while the stream is over this, in bytes (default 1 GiB; 0 = no limit). */
    maxBytes?: number;
  };
  /** How long an append waits for the stream's acknowledgement, in ms. Default 5000. */
  appendTimeoutMs?: number;
  /** While a reader waits for an event, how often the stream is asked for its last one, in ms. Default 50. */
  tailPollMs?: number;
  /** The region's Prometheus registry (bus appends, size, offsets). */
  metrics?: Registry;
}

/** What the configuration makes of the stream; its name and subject come from the region. */
export function eventStreamConfig(
  region: string,
  options: Pick<JetStreamEventBusOptions, 'replicas' | 'duplicateWindowSeconds' | 'retention'>,
): Partial<StreamConfig> & { name: string } {
  const maxAgeMs = (options.retention?.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS) * 1000;
  const maxBytes = options.retention?.maxBytes ?? DEFAULT_MAX_BYTES;
  const windowMs = (options.duplicateWindowSeconds ?? DEFAULT_DUPLICATE_WINDOW_SECONDS) * 1000;
  return {
    name: eventStreamName(region),
    subjects: [eventSubject(region)],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: maxAgeMs * NANOS_PER_MS,
    max_bytes: maxBytes > 0 ? maxBytes : -1,
    max_msgs: -1,
    // JetStream refuses a window longer than the age limit.
    duplicate_window: (maxAgeMs > 0 ? Math.min(windowMs, maxAgeMs) : windowMs) * NANOS_PER_MS,
    num_replicas: options.replicas ?? 1,
  };
}

/** Makes the stream, or brings an existing one to the configuration's limits. */
async function ensureStream(jsm: JetStreamManager, wanted: Partial<StreamConfig> & { name: string }) {
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(wanted.name);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
  }
  try {
    if (info === undefined) {
      await jsm.streams.add(wanted);
      return;
    }
    const have = info.config;
    const same =
      have.max_age === wanted.max_age &&
      have.max_bytes === wanted.max_bytes &&
      have.duplicate_window === wanted.duplicate_window &&
      have.num_replicas === wanted.num_replicas &&
      have.subjects?.join() === wanted.subjects?.join();
    if (!same) await jsm.streams.update(wanted.name, { ...have, ...wanted });
  } catch (error) {
    // 503: JetStream is there but not ready (a cluster electing its leader) — unavailable for now.
    if (error instanceof JetStreamApiError && error.status !== 503) throw streamRefused(wanted.name, error);
    throw error;
  }
}

function firstOf(info: StreamInfo): number {
  // An empty stream's first sequence is its last + 1 once it held anything, 0 before.
  return info.state.messages === 0 ? info.state.last_seq + 1 : info.state.first_seq;
}

/**
 * The event bus in a JetStream stream of the region's NATS, one server or a cluster with replicas.
 * The stream's sequence is the offset: JetStream numbers a stream's messages 1, 2, 3… in the order
 * it stores them and never reuses a number, so offsets are gap-free in commit order whichever
 * process appended (the region, every broker worker, a broker node on another host). The event's
 * id goes as `Nats-Msg-Id`, so a copy sent again within the duplicate window is acknowledged with
 * the first one's sequence and not stored twice. Retention is the stream's own (max_age,
 * max_bytes, oldest dropped first), applied by the server as it goes.
 *
 * An append resolves once the stream acknowledged it: stored on the server, or on a majority of a
 * cluster's replicas. A read gets each message by its sequence from the stream's leader, so an
 * event read right after its append is there; a long poll wakes on this process's own appends at
 * once and on anyone's within `tailPollMs`.
 */
export class JetStreamEventBus implements EventBus {
  readonly region: string;
  readonly stream: string;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #subject: string;
  readonly #appendTimeoutMs: number;
  readonly #tailPollMs: number;
  readonly #events = new EventEmitter();
  readonly #metrics: BusMetrics | undefined;
  readonly #gaugeTimer: NodeJS.Timeout | undefined;
  /** Readers waiting and onAppend listeners: the tail is polled while there are any. */
  #watchers = 0;
  #polling = false;
  #lastSeen = 0;
  /** The first offset the last enforceRetention() saw, to count what the server removed since. */
  #knownFirst = 0;
  #closed = false;

  private constructor(
    options: JetStreamEventBusOptions,
    nc: NatsConnection,
    jsm: JetStreamManager,
    info: StreamInfo,
  ) {
    this.region = options.region;
    this.stream = eventStreamName(options.region);
    this.#subject = eventSubject(options.region);
    this.#nc = nc;
    this.#jsm = jsm;
    this.#js = jetstream(nc, { timeout: options.appendTimeoutMs ?? DEFAULT_APPEND_TIMEOUT_MS });
    this.#appendTimeoutMs = options.appendTimeoutMs ?? DEFAULT_APPEND_TIMEOUT_MS;
    this.#tailPollMs = options.tailPollMs ?? DEFAULT_TAIL_POLL_MS;
    this.#events.setMaxListeners(0);
    this.#lastSeen = info.state.last_seq;
    this.#knownFirst = firstOf(info);
    this.#metrics = options.metrics ? busMetrics(options.metrics) : undefined;
    if (this.#metrics) {
      this.#gauges(info);
      this.#gaugeTimer = setInterval(() => {
        void this.#info().then(
          (i) => this.#gauges(i),
          () => {},
        );
      }, GAUGE_INTERVAL_MS);
      this.#gaugeTimer.unref();
    }
  }

  /**
   * Connects to the region's NATS and makes the region's stream, or brings it to the options'
   * limits (retention, duplicate window, replicas).
   * @throws StoreError IOTDR_EVENTS_UNAVAILABLE when NATS does not answer,
   * IOTDR_EVENTS_STREAM_REFUSED when it refuses the stream.
   */
  static async open(options: JetStreamEventBusOptions): Promise<JetStreamEventBus> {
    const nc = await connectNats(options.nats);
    try {
      const jsm = await jetstreamManager(nc, {
        timeout: options.appendTimeoutMs ?? DEFAULT_APPEND_TIMEOUT_MS,
      });
      const wanted = eventStreamConfig(options.region, options);
      await ensureStream(jsm, wanted);
      const info = await jsm.streams.info(wanted.name);
      return new JetStreamEventBus(options, nc, jsm, info);
    } catch (error) {
      await nc.close().catch(() => {});
      if (error instanceof IotdrError) throw error;
      throw natsUnavailable(`the event stream of ${options.region} could not be opened`, error);
    }
  }

  async append(event: NewEvent): Promise<AppendResult> {
    if (this.#closed) throw busClosed();
    checkEvent(event);
    let ack: { seq: number; duplicate: boolean };
    try {
      ack = await this.#js.publish(this.#subject, encodeEvent(event), {
        msgID: event.id,
        timeout: this.#appendTimeoutMs,
      });
    } catch (error) {
      if (this.#closed) throw busClosed();
      throw natsUnavailable(`the event stream of ${this.region} did not acknowledge ${event.id}`, error);
    }
    if (!ack.duplicate) this.#metrics?.appends.inc();
    this.#seen(ack.seq);
    return { offset: ack.seq, appended: !ack.duplicate };
  }

  /** Notes a sequence the stream has reached, waking readers waiting for it. */
  #seen(seq: number): void {
    if (seq <= this.#lastSeen) return;
    this.#lastSeen = seq;
    this.#metrics?.lastOffset.set(seq);
    this.#events.emit('append', seq);
  }

  async #info(): Promise<StreamInfo> {
    if (this.#closed) throw busClosed();
    try {
      return await this.#jsm.streams.info(this.stream);
    } catch (error) {
      if (this.#closed) throw busClosed();
      throw natsUnavailable(`the event stream of ${this.region} did not answer`, error);
    }
  }

  #gauges(info: StreamInfo): void {
    if (!this.#metrics) return;
    this.#metrics.bytes.set(info.state.bytes);
    this.#metrics.count.set(info.state.messages);
    this.#metrics.lastOffset.set(info.state.last_seq);
  }

  async #readNow(from: number, limit: number): Promise<ReadResult> {
    const info = await this.#info();
    const lastOffset = info.state.last_seq;
    this.#seen(lastOffset);
    let firstOffset = firstOf(info);
    const wanted = Math.max(from, 1);
    const start = Math.max(wanted, firstOffset);
    const end = Math.min(lastOffset, start + readLimit(limit) - 1);
    const stored: Array<BusEvent | undefined | null> = [];
    for (let seq = start; seq <= end; seq += READ_CONCURRENCY) {
      const upTo = Math.min(end, seq + READ_CONCURRENCY - 1);
      const batch = await Promise.all(Array.from({ length: upTo - seq + 1 }, (_, i) => this.#get(seq + i)));
      stored.push(...batch);
    }
    // Retention removes from the front: what is missing is what it removed since the info.
    let skip = 0;
    while (skip < stored.length && stored[skip] === null) skip++;
    if (skip > 0) firstOffset = start + skip;
    const events: BusEvent[] = [];
    let next = start + skip;
    for (const e of stored.slice(skip)) {
      if (e === null) break;
      next++;
      // A message that holds no event (not written by a bus) is passed over.
      if (e !== undefined) events.push(e);
    }
    return {
      events,
      next,
      firstOffset,
      lastOffset,
      ...(wanted < firstOffset ? { gap: { requested: from, firstOffset } } : {}),
    };
  }

  /** The event at `seq`; null when retention removed it; undefined when it holds no event. */
  async #get(seq: number): Promise<BusEvent | null | undefined> {
    let msg: Awaited<ReturnType<JetStreamManager['streams']['getMessage']>>;
    try {
      msg = await this.#jsm.streams.getMessage(this.stream, { seq });
    } catch (error) {
      if (this.#closed) throw busClosed();
      throw natsUnavailable(`the event stream of ${this.region} did not answer`, error);
    }
    if (msg === null) return null;
    return decodeEvent(msg.data, msg.seq, this.region);
  }

  async read(options: ReadOptions): Promise<ReadResult> {
    if (this.#closed) throw busClosed();
    const first = await this.#readNow(options.from, options.limit);
    const waitMs = Math.min(options.waitMs ?? 0, MAX_WAIT_MS);
    if (first.events.length > 0 || waitMs <= 0 || options.signal?.aborted) return first;
    // Nothing at or after `next` yet: wait for the stream to reach it.
    if (!(await this.#waitFor(first.next, waitMs, options.signal))) return first;
    return this.#readNow(options.from, options.limit);
  }

  /** Resolves true once the stream reached `offset`; false after `ms`, on abort or on close. */
  #waitFor(offset: number, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.#lastSeen >= offset) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (reached: boolean) => {
        clearTimeout(timer);
        this.#events.off('append', onAppend);
        this.#events.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        this.#unwatch();
        resolve(reached);
      };
      const onAppend = (last: number) => {
        if (last >= offset) done(true);
      };
      const onClose = () => done(false);
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), ms);
      this.#events.on('append', onAppend);
      this.#events.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#watch();
    });
  }

  #watch(): void {
    this.#watchers++;
    if (this.#polling) return;
    this.#polling = true;
    void this.#pollTail();
  }

  #unwatch(): void {
    this.#watchers = Math.max(0, this.#watchers - 1);
  }

  /** Asks the stream for its last sequence every tailPollMs while anyone waits or listens. */
  async #pollTail(): Promise<void> {
    try {
      while (this.#watchers > 0 && !this.#closed) {
        try {
          const info = await this.#jsm.streams.info(this.stream);
          this.#seen(info.state.last_seq);
        } catch {
          // Unreachable for now: the waiters time out, or the next poll sees the stream again.
        }
        await new Promise((resolve) => setTimeout(resolve, this.#tailPollMs));
      }
    } finally {
      this.#polling = false;
    }
  }

  async firstOffset(): Promise<number> {
    return firstOf(await this.#info());
  }

  async lastOffset(): Promise<number> {
    const info = await this.#info();
    this.#seen(info.state.last_seq);
    return info.state.last_seq;
  }

  async stats(): Promise<BusStats> {
    const info = await this.#info();
    return {
      firstOffset: firstOf(info),
      lastOffset: info.state.last_seq,
      count: info.state.messages,
      bytes: info.state.bytes,
    };
  }

  /**
   * The server applies the stream's limits as it goes; this reports what it removed since the
   * previous call (or since the bus opened).
   */
  async enforceRetention(): Promise<RetentionResult> {
    const info = await this.#info();
    this.#gauges(info);
    const firstOffset = firstOf(info);
    const removed = Math.max(0, firstOffset - this.#knownFirst);
    this.#knownFirst = Math.max(this.#knownFirst, firstOffset);
    return { removed, firstOffset };
  }

  onAppend(listener: (lastOffset: number) => void): () => void {
    this.#events.on('append', listener);
    this.#watch();
    let on = true;
    return () => {
      if (!on) return;
      on = false;
      this.#events.off('append', listener);
      this.#unwatch();
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#gaugeTimer);
    this.#events.emit('close');
    // Appends in flight get their acknowledgement before the connection goes; with NATS away a
    // drain would wait for it, so it has CLOSE_DRAIN_MS.
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.#nc.drain().then(
        () => true,
        () => false,
      ),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), CLOSE_DRAIN_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) await this.#nc.close().catch(() => {});
  }
}

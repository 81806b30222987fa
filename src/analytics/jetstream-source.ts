/**
 * Analytics reading a region's event bus straight from its JetStream stream, with one durable
 * pull consumer per region. The analytics store's cursor is the truth: the consumer is only a
 * delivery mechanism, acknowledged (AckAll) once a page is committed, and made again at the
 * cursor whenever it does not agree with it.
 */
import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../common/index.js';
import { type BusEvent, connectNats, decodeEvent, eventStreamName, type NatsLink } from '../events/index.js';
import { BusUnreachableError } from './errors.js';
import { type BusPage, type BusSource, DEFAULT_INGEST_BATCH, DEFAULT_INGEST_WAIT_MS } from './ingestor.js';

/** The durable consumer analytics reads a region's stream with. */
export const DEFAULT_ANALYTICS_DURABLE = 'iotdr-analytics';
/** How long a request to the region's NATS (stream or consumer info, create, ack) may take, in ms. */
export const DEFAULT_NATS_REQUEST_TIMEOUT_MS = 5000;
/** The shortest pull JetStream takes, in ms. */
const MIN_PULL_EXPIRES_MS = 1000;
/** A pull that has not ended this long after its expiry went with a server: it is given up, in ms. */
const PULL_GRACE_MS = 2000;
/**
 * Long polls in a row that brought nothing while the stream holds the next offset: deliveries
 * were lost (a server restart), so reading starts again at the cursor instead of waiting for the
 * consumer's redelivery (its ack wait, 30 s).
 */
const STALLED_POLLS = 2;

export interface JetStreamBusSourceOptions {
  region: string;
  /** The region's NATS. */
  nats: NatsLink;
  /** The durable consumer's name on the region's stream. Default `iotdr-analytics`. */
  durable?: string;
  /** Events per page; the source holds at most two pages pulled ahead. Default 500. */
  batchSize?: number;
  /** How long a read waits for the first event when caught up, in ms. Default 2000. */
  waitMs?: number;
  /** How long one request to NATS may take, in ms. Default 5000. */
  requestTimeoutMs?: number;
  logger?: Logger;
}

/** One incarnation of reading: a consumer, its pull loop and what it pulled ahead. */
class Pull {
  readonly buffer: JsMsg[] = [];
  ended = false;
  error: unknown;
  stopped = false;
  messages: ConsumerMessages | undefined;
  readonly #waiters = new Set<() => void>();

  /** Resolves on the next change (a message, the end, a stop), after `ms`, or on abort. */
  changed(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }

  notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.messages?.stop();
    this.notify();
  }
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/** The stream's first offset: an empty stream's is its last + 1. */
function firstOf(info: StreamInfo): number {
  return info.state.messages === 0 ? info.state.last_seq + 1 : info.state.first_seq;
}

/**
 * Reads one region's stream (`iotdr-events-<region>`) with a durable pull consumer, ack policy
 * all, delivering from a start sequence. Pages come in stream order; the stream sequence is the
 * event's offset.
 *
 * - When reading (re)starts — the first read, a read from another offset than the last page's
 *   `next` (a page not committed), after a stop, a reconnect or a failed pull — the consumer is
 *   kept only when its ack floor + 1 is the cursor and nothing is delivered beyond it; otherwise
 *   it is deleted and made again at the cursor (cursor 0: from the oldest kept).
 * - A message below the expected offset was counted already and is passed over. A message above
 *   it is a retention gap when the stream no longer holds the offsets between (reported as
 *   `gap`), and lost deliveries otherwise: reading starts again at the cursor; nothing is skipped.
 * - `committed(page)` acknowledges the page's last message (AckAll). A crash between the commit
 *   and the ack re-reads nothing twice: the next start finds the ack floor behind the cursor and
 *   makes the consumer again at the cursor.
 */
export class JetStreamBusSource implements BusSource {
  readonly region: string;
  readonly stream: string;
  readonly durable: string;
  readonly batchSize: number;
  readonly #link: NatsLink;
  readonly #waitMs: number;
  readonly #timeoutMs: number;
  readonly #logger: Logger | undefined;
  #connecting: Promise<{ nc: NatsConnection; jsm: JetStreamManager; js: JetStreamClient }> | undefined;
  /** Since when the connection is down (the client reconnects by itself), ms since the epoch. */
  #downSince: number | undefined;
  /** Why the current pull must be let go before the next read (a reconnect, a stop). */
  #stale: string | undefined;
  #pull: Pull | undefined;
  /** The offset the current pull's next message should have. */
  #next = 0;
  #lastOffset = 0;
  #stalled = 0;
  #signal: AbortSignal | undefined;
  #closed = false;
  /** The last message of each page read, to acknowledge once the page is committed. */
  readonly #acks = new WeakMap<BusPage, { msg: JsMsg; pull: Pull }>();

  constructor(options: JetStreamBusSourceOptions) {
    this.region = options.region;
    this.stream = eventStreamName(options.region);
    this.durable = options.durable ?? DEFAULT_ANALYTICS_DURABLE;
    this.batchSize = options.batchSize ?? DEFAULT_INGEST_BATCH;
    this.#link = options.nats;
    this.#waitMs = options.waitMs ?? DEFAULT_INGEST_WAIT_MS;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_NATS_REQUEST_TIMEOUT_MS;
    this.#logger = options.logger;
  }

  async read(from: number, signal: AbortSignal): Promise<BusPage> {
    if (this.#closed) throw this.#unreachable('the source is closed');
    this.#follow(signal);
    const deadline = Date.now() + this.#waitMs;
    const { jsm } = await this.#connection();
    const expected = Math.max(from, 1);
    for (;;) {
      this.#check(signal);
      if (this.#stale !== undefined || this.#pull === undefined || this.#next !== expected)
        await this.#begin(from);
      const pull = this.#pull as Pull;
      while (pull.buffer.length === 0 && !pull.ended && !signal.aborted && this.#ready()) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await pull.changed(left, signal);
      }
      this.#check(signal);
      if (this.#stale !== undefined) continue;
      // Passed over: delivered again, and counted already.
      while ((pull.buffer[0]?.seq ?? expected) < expected) pull.buffer.shift();
      if (pull.buffer.length > 0) {
        const page = await this.#page(jsm, pull, expected);
        if (page !== undefined) return page;
        continue;
      }
      if (pull.ended) {
        this.#pull = undefined;
        throw this.#unreachable(`the pull from ${this.stream} ended`, pull.error);
      }
      if (Date.now() < deadline) continue;
      return this.#caughtUp(jsm, expected);
    }
  }

  async committed(page: BusPage): Promise<void> {
    const ack = this.#acks.get(page);
    // The consumer is made again only when a new pull begins: until then the page's own stands.
    if (ack === undefined || ack.pull !== this.#pull) return;
    try {
      await ack.msg.ackAck({ timeout: this.#timeoutMs });
    } catch (error) {
      // Committed anyway: the consumer is made again at the cursor at the next start.
      this.#logger?.debug(
        { region: this.region, seq: ack.msg.seq, err: (error as Error).message },
        'acknowledgement not confirmed',
      );
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pull?.stop();
    this.#pull = undefined;
    const connecting = this.#connecting;
    if (connecting === undefined) return;
    try {
      const { nc } = await connecting;
      await nc.close();
    } catch {
      // Never connected: nothing to close.
    }
  }

  /**
   * The ingestor's signal aborts when it stops or closes, also between two reads: what was pulled
   * ahead is let go at once (a stop stops reading), and a resume starts again at the cursor.
   */
  #follow(signal: AbortSignal): void {
    if (signal === this.#signal) return;
    this.#signal = signal;
    signal.addEventListener('abort', () => this.#letGo('stopped'), { once: true });
  }

  /** Throws when reading cannot go on now: closed, stopped (abort), or NATS not connected. */
  #check(signal: AbortSignal): void {
    if (this.#closed) throw this.#unreachable('the source is closed');
    if (signal.aborted) {
      this.#letGo('stopped');
      throw signal.reason;
    }
    if (this.#downSince !== undefined)
      throw this.#unreachable(
        `not connected to NATS at ${this.#servers()} since ${new Date(this.#downSince).toISOString()}`,
      );
  }

  #ready(): boolean {
    return this.#downSince === undefined && this.#stale === undefined && !this.#closed;
  }

  #servers(): string {
    return this.#link.servers.join(', ');
  }

  #unreachable(message: string, cause?: unknown): BusUnreachableError {
    return new BusUnreachableError(this.region, message, {
      servers: this.#link.servers,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /** Stops the current pull; the next read starts reading again from its cursor. */
  #letGo(reason: string): void {
    if (this.#pull === undefined) return;
    this.#stale = reason;
    this.#pull.stop();
  }

  async #connection(): Promise<{ nc: NatsConnection; jsm: JetStreamManager; js: JetStreamClient }> {
    this.#connecting ??= (async () => {
      const nc = await connectNats(this.#link);
      try {
        const jsm = await jetstreamManager(nc, { timeout: this.#timeoutMs });
        void this.#watch(nc);
        return { nc, jsm, js: jetstream(nc, { timeout: this.#timeoutMs }) };
      } catch (error) {
        await nc.close().catch(() => {});
        throw error;
      }
    })();
    try {
      return await this.#connecting;
    } catch (error) {
      this.#connecting = undefined;
      throw this.#unreachable(`NATS at ${this.#servers()} did not answer`, error);
    }
  }

  /** Follows the connection: down while disconnected; every reconnect starts reading again. */
  async #watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.#downSince ??= Date.now();
        this.#logger?.warn({ region: this.region, servers: this.#link.servers }, 'NATS disconnected');
      } else if (status.type === 'reconnect') {
        this.#downSince = undefined;
        // Deliveries in flight when the link went may be lost: start again from the cursor.
        this.#letGo('reconnected');
        this.#logger?.info({ region: this.region }, 'NATS reconnected');
      } else continue;
      this.#pull?.notify();
    }
  }

  /**
   * Starts reading at the store's cursor: keeps the durable consumer when it agrees with the
   * cursor (ack floor + 1 = cursor, nothing delivered beyond), makes it again at the cursor
   * otherwise, and starts pulling.
   */
  async #begin(from: number): Promise<void> {
    this.#pull?.stop();
    this.#pull = undefined;
    this.#stale = undefined;
    this.#stalled = 0;
    const { jsm, js } = await this.#connection();
    const expected = Math.max(from, 1);
    let info: ConsumerInfo | undefined;
    try {
      info = await jsm.consumers.info(this.stream, this.durable);
    } catch (error) {
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw this.#apiFailure(error);
    }
    const agrees =
      info !== undefined &&
      info.config.ack_policy === AckPolicy.All &&
      info.ack_floor.stream_seq + 1 === expected &&
      info.delivered.stream_seq <= info.ack_floor.stream_seq;
    if (!agrees) await this.#remake(jsm, from, info);
    let consumer: Consumer;
    try {
      consumer = await js.consumers.get(this.stream, this.durable);
    } catch (error) {
      throw this.#apiFailure(error);
    }
    const pull = new Pull();
    this.#pull = pull;
    this.#next = expected;
    void this.#pump(pull, consumer);
  }

  /** Deletes the consumer (when there is one) and makes it at the cursor. */
  async #remake(jsm: JetStreamManager, from: number, info: ConsumerInfo | undefined): Promise<void> {
    const config: Partial<ConsumerConfig> = {
      durable_name: this.durable,
      description: `iotdr analytics, region ${this.region}`,
      ack_policy: AckPolicy.All,
      ...(from > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }
        : { deliver_policy: DeliverPolicy.All }),
    };
    try {
      if (info !== undefined) await jsm.consumers.delete(this.stream, this.durable);
      await jsm.consumers.add(this.stream, config);
    } catch (error) {
      throw this.#apiFailure(error);
    }
    this.#logger?.info(
      {
        region: this.region,
        durable: this.durable,
        from,
        ...(info === undefined
          ? {}
          : { ackFloor: info.ack_floor.stream_seq, delivered: info.delivered.stream_seq }),
      },
      info === undefined
        ? 'analytics consumer made at the cursor'
        : 'analytics consumer made again at the cursor',
    );
  }

  #apiFailure(error: unknown): BusUnreachableError {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound))
      return this.#unreachable(
        `NATS at ${this.#servers()} has no stream ${this.stream} (the region has not made it yet)`,
        error,
      );
    return this.#unreachable(`NATS at ${this.#servers()} did not answer`, error);
  }

  /** Pulls while there is room for it: at most two pages ahead of what the reads took. */
  async #pump(pull: Pull, consumer: Consumer): Promise<void> {
    const expires = Math.max(MIN_PULL_EXPIRES_MS, this.#waitMs);
    try {
      while (!pull.stopped) {
        const room = 2 * this.batchSize - pull.buffer.length;
        if (room <= 0) {
          await pull.changed(expires);
          continue;
        }
        const messages = await consumer.fetch({ max_messages: room, expires });
        pull.messages = messages;
        if (pull.stopped) messages.stop();
        const lost = setTimeout(
          () => messages.stop(new Error(`a pull from ${this.durable} did not end`)),
          expires + PULL_GRACE_MS,
        );
        try {
          for await (const msg of messages) {
            if (pull.stopped) break;
            pull.buffer.push(msg);
            pull.notify();
          }
        } finally {
          clearTimeout(lost);
        }
      }
    } catch (error) {
      if (!pull.stopped) {
        pull.error = error;
        this.#logger?.debug({ region: this.region, err: (error as Error).message }, 'pull ended');
      }
    } finally {
      pull.ended = true;
      pull.notify();
    }
  }

  /**
   * A page from what was pulled, first message at or above `expected`; undefined when reading
   * must start again (lost deliveries).
   */
  async #page(jsm: JetStreamManager, pull: Pull, expected: number): Promise<BusPage | undefined> {
    let next = expected;
    let gap: BusPage['gap'];
    const head = pull.buffer[0] as JsMsg;
    if (head.seq > expected) {
      const found = await this.#jump(jsm, expected, head.seq);
      if (found === undefined) {
        this.#logger?.warn(
          { region: this.region, expected, delivered: head.seq },
          'deliveries were lost: reading again from the cursor',
        );
        this.#letGo('lost deliveries');
        return undefined;
      }
      gap = { requested: expected, firstOffset: found };
      next = found;
    }
    const events: BusEvent[] = [];
    let last: JsMsg | undefined;
    while (events.length < this.batchSize) {
      const msg = pull.buffer[0];
      if (msg === undefined || msg.seq > next) break;
      pull.buffer.shift();
      if (msg.seq < next) continue;
      next = msg.seq + 1;
      last = msg;
      // A message that holds no event (not written by a bus) is passed over, like the HTTP bus does.
      const event = decodeEvent(msg.data, msg.seq, this.region);
      if (event !== undefined) events.push(event);
    }
    pull.notify();
    this.#next = next;
    if (last !== undefined) this.#lastOffset = Math.max(this.#lastOffset, last.seq + last.info.pending);
    const page: BusPage = {
      events,
      next,
      lastOffset: Math.max(this.#lastOffset, next - 1),
      ...(gap === undefined ? {} : { gap }),
    };
    if (last !== undefined) this.#acks.set(page, { msg: last, pull });
    this.#stalled = 0;
    return page;
  }

  /**
   * The consumer delivered `seq` while `expected` was due. Resolves with where reading goes on
   * when the stream no longer holds the offsets between (retention, or a message deleted), and
   * undefined when it does: deliveries were lost.
   */
  async #jump(jsm: JetStreamManager, expected: number, seq: number): Promise<number | undefined> {
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(this.stream);
    } catch (error) {
      throw this.#apiFailure(error);
    }
    const first = firstOf(info);
    // Retention removes from the front: everything below `first` is gone.
    if (first > expected) return Math.min(first, seq);
    let stored: unknown;
    try {
      stored = await jsm.streams.getMessage(this.stream, { seq: expected });
    } catch (error) {
      throw this.#apiFailure(error);
    }
    // A message deleted from the middle: a gap of one; the next page looks at what follows.
    return stored === null ? expected + 1 : undefined;
  }

  /** Nothing came within the wait: caught up, unless the stream holds more (then lost deliveries). */
  async #caughtUp(jsm: JetStreamManager, expected: number): Promise<BusPage> {
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(this.stream);
    } catch (error) {
      throw this.#apiFailure(error);
    }
    const last = info.state.last_seq;
    this.#lastOffset = last;
    const first = firstOf(info);
    if (info.state.messages === 0 && first > expected) {
      // Retention removed everything from `expected` on before it was delivered: nothing will be.
      this.#next = first;
      return { events: [], next: first, lastOffset: last, gap: { requested: expected, firstOffset: first } };
    }
    if (last >= expected && ++this.#stalled >= STALLED_POLLS) {
      this.#logger?.warn(
        { region: this.region, expected, last },
        'nothing delivered while the stream holds more: reading again from the cursor',
      );
      this.#letGo('stalled');
    } else if (last < expected) this.#stalled = 0;
    return { events: [], next: expected, lastOffset: Math.max(last, expected - 1) };
  }
}

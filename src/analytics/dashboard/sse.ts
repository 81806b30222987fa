import type { ServerResponse } from 'node:http';
import { type Clock, systemClock, systemTimers, type Timers } from '../../common/index.js';
import type { LiveSnapshot } from './snapshot.js';

/** A client that has this much unsent data is too slow to follow the stream and is dropped. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Tells EventSource how long to wait before reconnecting, ms. */
const RETRY_MS = 1000;

interface Client {
  readonly res: ServerResponse;
  /** Whose stream it is (a token), for the per-token limit. */
  readonly holder: string;
  lastSentAt: number;
}

/** Whether a client may join: yes, or which limit it meets. */
export type Room = 'yes' | 'full' | 'holder-full';

export interface LiveStreamOptions {
  /** The latest snapshot, sent to every new client and on every resend. */
  current: () => LiveSnapshot;
  maxClients: number;
  /** Streams one holder (token) may have open at once. */
  maxClientsPerHolder: number;
  resendMs: number;
  heartbeatMs: number;
  clock?: Clock;
  timers?: Timers;
}

/**
 * The Server-Sent Events side of GET /v1/live: one `snapshot` event on connect, one on every
 * change, and one to any client that has had none for `resendMs`; a comment every `heartbeatMs`.
 * The stream owns no polling: the live view does that once for all clients.
 */
export class LiveStream {
  readonly #options: LiveStreamOptions;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #clients = new Set<Client>();
  readonly #perHolder = new Map<string, number>();
  #tick: unknown;
  #lastHeartbeatAt = 0;

  constructor(options: LiveStreamOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#timers = options.timers ?? systemTimers;
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Whether one more client of `holder` may join. */
  hasRoom(holder: string): Room {
    if ((this.#perHolder.get(holder) ?? 0) >= this.#options.maxClientsPerHolder) return 'holder-full';
    return this.#clients.size < this.#options.maxClients ? 'yes' : 'full';
  }

  /** Takes over `res` (already hijacked from the framework) as `holder`'s event stream. */
  add(res: ServerResponse, holder: string): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Reverse proxies such as nginx would otherwise buffer the stream.
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
    });
    const client: Client = { res, holder, lastSentAt: 0 };
    this.#clients.add(client);
    this.#perHolder.set(holder, (this.#perHolder.get(holder) ?? 0) + 1);
    res.on('close', () => this.#remove(client));
    res.write(`retry: ${RETRY_MS}\n\n`);
    this.#send(client, this.#options.current());
    this.#schedule();
  }

  /** Sends a changed snapshot to every client. */
  broadcast(snapshot: LiveSnapshot): void {
    for (const client of this.#clients) this.#send(client, snapshot);
  }

  /** Ends every stream (the server is closing) and stops the timer. */
  close(): void {
    if (this.#tick !== undefined) this.#timers.clearTimeout(this.#tick);
    this.#tick = undefined;
    for (const client of this.#clients) client.res.end();
    this.#clients.clear();
    this.#perHolder.clear();
  }

  #remove(client: Client): void {
    if (!this.#clients.delete(client)) return;
    const left = (this.#perHolder.get(client.holder) ?? 1) - 1;
    if (left > 0) this.#perHolder.set(client.holder, left);
    else this.#perHolder.delete(client.holder);
  }

  #send(client: Client, snapshot: LiveSnapshot): void {
    const { res } = client;
    if (res.destroyed || res.writableEnded) {
      this.#remove(client);
      return;
    }
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      this.#remove(client);
      res.destroy();
      return;
    }
    // JSON.stringify never emits a raw newline, so the data fits one `data:` line.
    res.write(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
    client.lastSentAt = this.#clock.now();
  }

  /** One timer for all clients, running only while there are clients. */
  #schedule(): void {
    if (this.#tick !== undefined || this.#clients.size === 0) return;
    const period = Math.max(50, Math.min(this.#options.resendMs, this.#options.heartbeatMs) / 4);
    this.#tick = this.#timers.setTimeout(() => {
      this.#tick = undefined;
      this.#onTick();
      this.#schedule();
    }, period);
  }

  #onTick(): void {
    const now = this.#clock.now();
    const heartbeat = now - this.#lastHeartbeatAt >= this.#options.heartbeatMs;
    if (heartbeat) this.#lastHeartbeatAt = now;
    let snapshot: LiveSnapshot | undefined;
    for (const client of this.#clients) {
      if (heartbeat && !client.res.writableEnded) client.res.write(': heartbeat\n\n');
      if (now - client.lastSentAt >= this.#options.resendMs) {
        snapshot ??= this.#options.current();
        this.#send(client, snapshot);
      }
    }
  }
}

/**
 * Admission of TLS handshakes: at most `limit` run at once, the rest wait with their TCP connection
 * open and no TLS work done. A storm of devices reconnecting together (after a failover, or a
 * broker restart) then costs the event loop a bounded slice per turn instead of every handshake at
 * once, so the sessions already up and the region's own health probe keep getting answers while
 * the storm drains at the full handshake rate. Exempt connections (the region's own address) skip
 * the line.
 *
 * The newest waiting connection goes first (last in, first out). Under a storm the line is longer
 * than a client's patience: served in arrival order, every handshake would go to a client that has
 * already given up and gone, and none would finish (congestion collapse). The newest has the most
 * patience left, so each handshake started is one that completes; those left waiting give up,
 * back off and come again as new arrivals.
 */
import type { Socket } from 'node:net';

interface Waiting {
  socket: Socket;
  start: () => void;
  since: number;
}

export interface HandshakeGateOptions {
  /** Handshakes running at once, to begin with, and the fewest it adapts down to. */
  limit: number;
  /**
   * Adapts the limit between `limit` and this (default: `limit`, no adapting) to the event loop:
   * a loop late by more than `lagTargetMs` while busy with its own work takes a quarter off; on
   * time (or late only because other processes held the CPU) with every slot in use, it grows by
   * an eighth. Cheap handshakes to far clients then run many at once; costly ones to a busy loop,
   * few.
   */
  maxLimit?: number;
  /** Default 20 ms. */
  lagTargetMs?: number;
  maxWaiting: number;
  maxWaitMs: number;
  now: () => number;
}

/** How often the event loop's lateness is sampled, ms. */
const SAMPLE_MS = 100;
/**
 * The share of a sample's time the loop must have spent on its own work for its lateness to count
 * against the handshakes. A loop late but mostly idle waited for the CPU (other processes on a
 * shared machine): admitting fewer handshakes would not make it answer sooner, it would only leave
 * the broker's share of the CPU unused while connections wait.
 */
const BUSY = 0.9;

export class HandshakeGate {
  #limit: number;
  readonly #minLimit: number;
  readonly #maxLimit: number;
  readonly #lagTargetMs: number;
  readonly #maxWaiting: number;
  readonly #maxWaitMs: number;
  readonly #now: () => number;
  /** Oldest first; served from the end. */
  #waiting: Waiting[] = [];
  #running = 0;
  /** Whether every slot was in use since the last sample. */
  #saturated = false;
  #sampler: NodeJS.Timeout | undefined;

  constructor(options: HandshakeGateOptions) {
    this.#limit = options.limit;
    this.#maxLimit = Math.max(options.limit, options.maxLimit ?? options.limit);
    this.#minLimit = Math.max(1, options.limit);
    this.#lagTargetMs = options.lagTargetMs ?? 20;
    this.#maxWaiting = options.maxWaiting;
    this.#maxWaitMs = options.maxWaitMs;
    this.#now = options.now;
    if (this.#maxLimit > options.limit) {
      let expected = performance.now() + SAMPLE_MS;
      let used = performance.eventLoopUtilization();
      this.#sampler = setInterval(() => {
        const lag = performance.now() - expected;
        expected = performance.now() + SAMPLE_MS;
        const busy = performance.eventLoopUtilization(used).utilization;
        used = performance.eventLoopUtilization();
        this.#adapt(lag, busy);
      }, SAMPLE_MS);
      this.#sampler.unref();
    }
  }

  /** The limit in force now. */
  get limit(): number {
    return this.#limit;
  }

  /**
   * One sample: how late the event loop ran (ms) and the share of the sample it was busy with its
   * own work (0–1, its utilization); adapts the limit (also called by tests).
   */
  adapt(lagMs: number, busy: number): void {
    this.#adapt(lagMs, busy);
  }

  #adapt(lagMs: number, busy: number): void {
    if (lagMs > this.#lagTargetMs && busy >= BUSY)
      this.#limit = Math.max(this.#minLimit, Math.floor((this.#limit * 3) / 4));
    else if (this.#saturated)
      this.#limit = Math.min(this.#maxLimit, this.#limit + Math.max(1, Math.floor(this.#limit / 8)));
    this.#drain();
    this.#saturated = this.#running >= this.#limit;
  }

  /** Stops sampling (the broker closing). */
  close(): void {
    if (this.#sampler) clearInterval(this.#sampler);
    this.#sampler = undefined;
  }

  /** Handshakes running now. */
  get running(): number {
    return this.#running;
  }

  /** Connections waiting for their turn (some may have gone since; they are skipped). */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Starts the handshake now or when a slot frees; false when the line is full (the caller closes
   * the connection). `start` must lead to exactly one `done()`.
   */
  admit(socket: Socket, start: () => void, exempt: boolean): boolean {
    if (exempt || this.#running < this.#limit) {
      this.#running++;
      if (this.#running >= this.#limit) this.#saturated = true;
      start();
      return true;
    }
    this.#saturated = true;
    if (this.#waiting.length >= this.#maxWaiting) this.#prune();
    if (this.#waiting.length >= this.#maxWaiting) return false;
    this.#waiting.push({ socket, start, since: this.#now() });
    return true;
  }

  /** A handshake ended (secure, failed or timed out): the newest waiting connection starts. */
  done(): void {
    this.#running = Math.max(0, this.#running - 1);
    this.#drain();
  }

  #drain(): void {
    const now = this.#now();
    while (this.#running < this.#limit && this.#waiting.length > 0) {
      const next = this.#waiting.pop() as Waiting;
      if (!this.#alive(next, now)) continue;
      this.#running++;
      next.start();
    }
  }

  /** Gone while waiting, or waited past the deadline (closed): its client has given up or will. */
  #alive(w: Waiting, now: number): boolean {
    if (w.socket.destroyed) return false;
    if (now - w.since > this.#maxWaitMs) {
      w.socket.destroy();
      return false;
    }
    return true;
  }

  /** Drops the connections that are gone or waited too long, from anywhere in the line. */
  #prune(): void {
    const now = this.#now();
    this.#waiting = this.#waiting.filter((w) => this.#alive(w, now));
  }
}

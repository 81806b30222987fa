/**
 * Admission of TLS handshakes: at most `limit` run at once, the rest wait with their TCP connection
 * open and no TLS work done. A storm of devices reconnecting together (after a failover, or a
 * broker restart) then costs the event loop a bounded slice per turn instead of every handshake at
 * once, so the sessions already up and the region's own health probe keep getting answers while
 * the storm drains at the full handshake rate. Exempt connections (the region's own address) skip
 * the line.
 *
 * The line is how the region sets the pace of a storm. It is served in arrival order, and a
 * connection joins it only when the broker can serve it in time: the line's length ÷ the rate the
 * broker has lately been finishing handshakes is the wait a newcomer faces, and a newcomer that
 * would wait longer than three quarters of `maxWaitMs`, or find no session left for it once
 * served, is closed at once, before any TLS work (it backs off and comes again). So every
 * connection admitted is served once, within `maxWaitMs`, by a client patient that long (the
 * device SDK waits 60 s for its CONNACK once its TCP connection is up, and stops waiting at once
 * when the name moves elsewhere); a fleet of thousands costs each device one connection instead
 * of one per retry, and the broker's work goes to handshakes that complete. One that waited
 * longer all the same (the rate fell) is closed unstarted when its turn comes.
 */
import type { Socket } from 'node:net';

interface Waiting {
  socket: Socket;
  start: () => void;
  since: number;
  /** Left the line: started, closed unstarted, or gone (its socket closed). */
  left: boolean;
  onClose: () => void;
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
  /** Connections waiting at once, at most (Infinity: as many as `room` allows). */
  maxWaiting: number;
  /**
   * The longest a connection waits for its turn, ms; newcomers whose expected wait is over three
   * quarters of it are refused.
   */
  maxWaitMs: number;
  /**
   * Connections the broker could still make sessions of (its session limit less the sessions up);
   * handshakes running and connections waiting must fit in it. Default: no bound but maxWaiting.
   */
  room?: () => number;
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
/**
 * The service rate assumed before any is measured, per handshake slot and second: a full
 * handshake in 100 ms per slot, below what this machine does (8 slots: 80 a second, against
 * 90–280 measured). Too low only refuses some of a storm's first wave; the measured rate takes
 * over within a few dozen handshakes.
 */
const PRIOR_RATE_PER_SLOT = 10;
/** Weight of one interval in the average gap between handshakes finished under a line (1/32). */
const GAP_WEIGHT = 1 / 32;
/** Entries left behind at the head are dropped from the array once this many accumulate. */
const COMPACT_AT = 1024;

export class HandshakeGate {
  #limit: number;
  readonly #minLimit: number;
  readonly #maxLimit: number;
  readonly #lagTargetMs: number;
  readonly #maxWaiting: number;
  readonly #maxWaitMs: number;
  readonly #room: () => number;
  readonly #now: () => number;
  /** Oldest first, from #head on; entries before #head have left. */
  #waiting: Waiting[] = [];
  #head = 0;
  /** Entries still waiting (not left). */
  #live = 0;
  #running = 0;
  /** Whether every slot was in use since the last sample. */
  #saturated = false;
  #sampler: NodeJS.Timeout | undefined;
  /** Average ms between two handshakes finished while connections waited: 1 ÷ the service rate. */
  #gapMs: number;
  /** When the last handshake finished with connections waiting; undefined when none waited. */
  #lastDone: number | undefined;

  constructor(options: HandshakeGateOptions) {
    this.#limit = options.limit;
    this.#maxLimit = Math.max(options.limit, options.maxLimit ?? options.limit);
    this.#minLimit = Math.max(1, options.limit);
    this.#lagTargetMs = options.lagTargetMs ?? 20;
    this.#maxWaiting = options.maxWaiting;
    this.#maxWaitMs = options.maxWaitMs;
    this.#room = options.room ?? (() => Number.POSITIVE_INFINITY);
    this.#now = options.now;
    this.#gapMs = 1000 / (PRIOR_RATE_PER_SLOT * this.#minLimit);
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

  /** Handshakes a second the broker finished lately while connections waited (its service rate). */
  get rate(): number {
    return this.#gapMs > 0 ? 1000 / this.#gapMs : Number.POSITIVE_INFINITY;
  }

  /** What a connection arriving now would wait for its turn, ms: the line ÷ the service rate. */
  get expectedWaitMs(): number {
    return this.#live === 0 ? 0 : (this.#live + 1) * this.#gapMs;
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

  /** Connections waiting for their turn. */
  get waiting(): number {
    return this.#live;
  }

  /**
   * Starts the handshake now or when its turn comes; false when the broker cannot serve it in
   * time or has no session left for it (the caller closes the connection). `start` must lead to
   * exactly one `done()`.
   */
  admit(socket: Socket, start: () => void, exempt: boolean): boolean {
    if (exempt || (this.#running < this.#limit && this.#live === 0)) {
      this.#running++;
      if (this.#running >= this.#limit) this.#saturated = true;
      start();
      return true;
    }
    this.#saturated = true;
    this.#dropExpiredHead(this.#now());
    if (this.#live >= this.#maxWaiting) return false;
    if (this.#live + this.#running >= this.#room()) return false;
    if (this.#live > 0 && (this.#live + 1) * this.#gapMs > (this.#maxWaitMs * 3) / 4) return false;
    const w: Waiting = { socket, start, since: this.#now(), left: false, onClose: () => this.#leave(w) };
    socket.once('close', w.onClose);
    this.#waiting.push(w);
    this.#live++;
    this.#drain();
    return true;
  }

  /** A handshake ended (secure, failed or timed out): the oldest waiting connection starts. */
  done(): void {
    this.#running = Math.max(0, this.#running - 1);
    const now = this.#now();
    if (this.#live > 0) {
      if (this.#lastDone !== undefined)
        this.#gapMs += (Math.max(0, now - this.#lastDone) - this.#gapMs) * GAP_WEIGHT;
      this.#lastDone = now;
    } else {
      this.#lastDone = undefined;
    }
    this.#drain();
  }

  #drain(): void {
    const now = this.#now();
    while (this.#running < this.#limit && this.#live > 0) {
      const next = this.#waiting[this.#head++] as Waiting;
      if (next.left) continue;
      this.#leave(next);
      if (next.socket.destroyed) continue;
      if (now - next.since > this.#maxWaitMs) {
        next.socket.destroy();
        continue;
      }
      this.#running++;
      next.start();
    }
    this.#compact();
  }

  /** Closes, from the head, the connections that waited past maxWaitMs: their clients gave up or will. */
  #dropExpiredHead(now: number): void {
    while (this.#head < this.#waiting.length) {
      const w = this.#waiting[this.#head] as Waiting;
      if (!w.left && !w.socket.destroyed && now - w.since <= this.#maxWaitMs) break;
      this.#head++;
      if (!w.left) {
        this.#leave(w);
        w.socket.destroy();
      }
    }
    this.#compact();
  }

  #leave(w: Waiting): void {
    if (w.left) return;
    w.left = true;
    this.#live--;
    w.socket.off('close', w.onClose);
  }

  #compact(): void {
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    } else if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
  }
}

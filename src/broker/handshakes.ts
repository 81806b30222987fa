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

export class HandshakeGate {
  readonly #limit: number;
  readonly #maxWaiting: number;
  readonly #maxWaitMs: number;
  readonly #now: () => number;
  /** Oldest first; served from the end. */
  #waiting: Waiting[] = [];
  #running = 0;

  constructor(options: { limit: number; maxWaiting: number; maxWaitMs: number; now: () => number }) {
    this.#limit = options.limit;
    this.#maxWaiting = options.maxWaiting;
    this.#maxWaitMs = options.maxWaitMs;
    this.#now = options.now;
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
      start();
      return true;
    }
    if (this.#waiting.length >= this.#maxWaiting) this.#prune();
    if (this.#waiting.length >= this.#maxWaiting) return false;
    this.#waiting.push({ socket, start, since: this.#now() });
    return true;
  }

  /** A handshake ended (secure, failed or timed out): the newest waiting connection starts. */
  done(): void {
    this.#running = Math.max(0, this.#running - 1);
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

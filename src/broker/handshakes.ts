/**
 * Admission of TLS handshakes: at most `limit` run at once, the rest wait in arrival order with
 * their TCP connection open and no TLS work done. A storm of devices reconnecting together (after
 * a failover, or a broker restart) then costs the event loop a bounded slice per turn instead of
 * every handshake at once, so the sessions already up and the region's own health probe keep
 * getting answers while the storm drains at the full handshake rate. Exempt connections (the
 * region's own address) skip the line.
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
  readonly #waiting: Waiting[] = [];
  #head = 0;
  #running = 0;

  constructor(options: { limit: number; maxWaiting: number; maxWaitMs: number; now: () => number }) {
    this.#limit = options.limit;
    this.#maxWaiting = options.maxWaiting;
    this.#maxWaitMs = options.maxWaitMs;
    this.#now = options.now;
  }

  /** Handshakes running now, and connections waiting for their turn. */
  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length - this.#head;
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
    if (this.waiting >= this.#maxWaiting) return false;
    this.#waiting.push({ socket, start, since: this.#now() });
    return true;
  }

  /** A handshake ended (secure, failed or timed out): the next waiting connection starts. */
  done(): void {
    this.#running = Math.max(0, this.#running - 1);
    const now = this.#now();
    while (this.#running < this.#limit && this.#head < this.#waiting.length) {
      const next = this.#waiting[this.#head++] as Waiting;
      // Gone while waiting, or waited past the deadline: its client has given up or will.
      if (next.socket.destroyed) continue;
      if (now - next.since > this.#maxWaitMs) {
        next.socket.destroy();
        continue;
      }
      this.#running++;
      next.start();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

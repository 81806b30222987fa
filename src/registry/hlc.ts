import type { Clock } from '../common/index.js';
import { compareHlc, type Hlc } from './store/index.js';

/**
 * Hybrid logical clock: wall milliseconds plus a counter, never going backwards even when the
 * wall clock does, and moving past every timestamp it has seen from another region. Replication
 * orders concurrent writes to the same entity by it (last writer wins).
 */
export class HybridClock {
  readonly #clock: Clock;
  #last: Hlc = { wall: 0, counter: 0 };

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Moves the clock past a timestamp already issued (at start, the highest in the change log). */
  restore(seen: Hlc): void {
    if (compareHlc(seen, this.#last) > 0) this.#last = { ...seen };
  }

  /** A new timestamp, greater than every one issued or received before. */
  now(): Hlc {
    const wall = this.#clock.now();
    this.#last =
      wall > this.#last.wall
        ? { wall, counter: 0 }
        : { wall: this.#last.wall, counter: this.#last.counter + 1 };
    return { ...this.#last };
  }

  /** Folds in a timestamp received from another region. */
  receive(remote: Hlc): Hlc {
    const wall = Math.max(this.#clock.now(), this.#last.wall, remote.wall);
    let counter = 0;
    if (wall === this.#last.wall && wall === remote.wall)
      counter = Math.max(this.#last.counter, remote.counter) + 1;
    else if (wall === this.#last.wall) counter = this.#last.counter + 1;
    else if (wall === remote.wall) counter = remote.counter + 1;
    this.#last = { wall, counter };
    return { ...this.#last };
  }
}

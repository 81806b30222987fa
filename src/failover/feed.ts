/**
 * The controller's decisions for DNS servers in other processes (`iotdr dns`): a DecisionSink that
 * keeps the decision with the active region's address, and lets a follower wait for the next one
 * (GET /v1/failover/decision?after=EPOCH&wait=MS, a long poll).
 */
import type { Decision, DecisionSink } from './types.js';

/** What a follower serves: the region, the address its names answer, and the fencing epoch. */
export interface ServedDecision {
  readonly region: string;
  readonly address: string;
  readonly epoch: number;
  readonly decidedAt: number;
}

export class DecisionFeed implements DecisionSink {
  readonly name = 'followers';
  readonly #addressOf: (region: string) => string;
  #current: ServedDecision | undefined;
  readonly #waiters = new Set<() => void>();

  /** `addressOf` gives the address DNS answers for a region (the region's configured IP). */
  constructor(addressOf: (region: string) => string) {
    this.#addressOf = addressOf;
  }

  apply(decision: Decision): void {
    this.#current = Object.freeze({
      region: decision.activeRegion,
      address: this.#addressOf(decision.activeRegion),
      epoch: decision.epoch,
      decidedAt: decision.at,
    });
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /** The decision as it is now; undefined before the controller announced one. */
  current(): ServedDecision | undefined {
    return this.#current;
  }

  /**
   * The current decision as soon as its epoch differs from `afterEpoch` (at once when it already
   * does, or when `afterEpoch` is undefined), or after `waitMs` when none came, or when `signal`
   * aborts: whichever is first. Undefined only while there is no decision at all.
   */
  async next(
    afterEpoch: number | undefined,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<ServedDecision | undefined> {
    const changed = () => this.#current !== undefined && this.#current.epoch !== afterEpoch;
    if (afterEpoch === undefined || changed() || waitMs <= 0 || signal?.aborted) return this.#current;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
    return this.#current;
  }

  /** Followers waiting now (for tests and metrics). */
  get waiting(): number {
    return this.#waiters.size;
  }
}

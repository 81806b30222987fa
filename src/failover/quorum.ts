import type { CheckerView, Observation } from './types.js';

export interface Verdict {
  status: 'up' | 'down';
  /** For down: the earliest start of a failing streak among the checkers voting down. */
  firstFailedProbeAt: number | null;
}

/**
 * What each checker has seen of one region, and the verdict of a quorum of them. A checker votes
 * `down` after `failureThreshold` consecutive failed probes, `up` after `recoveryThreshold`
 * consecutive good ones, and not at all in between or when its latest observation is older than
 * `maxAgeMs` (it is cut off, or dead). A verdict needs `quorum` votes; otherwise there is none and
 * the region keeps its status, so one checker's own network trouble moves nothing.
 */
export class RegionVotes {
  readonly #views = new Map<string, CheckerView>();

  constructor(
    private readonly options: {
      failureThreshold: number;
      recoveryThreshold: number;
      quorum: number;
      maxAgeMs: number;
    },
  ) {}

  /** Counts one observation; one older than the checker's latest is ignored (delivered out of order). */
  add(o: Observation): boolean {
    const previous = this.#views.get(o.checker);
    if (previous && o.at < previous.lastAt) return false;
    const failures = o.ok ? 0 : (previous?.consecutiveFailures ?? 0) + 1;
    const successes = o.ok ? (previous?.consecutiveSuccesses ?? 0) + 1 : 0;
    this.#views.set(o.checker, {
      lastAt: o.at,
      ok: o.ok,
      consecutiveFailures: failures,
      consecutiveSuccesses: successes,
      failingSince: o.ok ? null : (previous?.failingSince ?? o.at),
      failingComponents: o.failingComponents,
      latencyMs: o.latencyMs,
      ...(o.error === undefined ? {} : { error: o.error }),
      vote: 'none',
    });
    return true;
  }

  #vote(view: CheckerView, now: number): CheckerView['vote'] {
    if (now - view.lastAt > this.options.maxAgeMs) return 'none';
    if (view.consecutiveFailures >= this.options.failureThreshold) return 'down';
    if (view.consecutiveSuccesses >= this.options.recoveryThreshold) return 'up';
    return 'none';
  }

  verdict(now: number): Verdict | undefined {
    let up = 0;
    let down = 0;
    let firstFailed: number | null = null;
    for (const view of this.#views.values()) {
      const vote = this.#vote(view, now);
      if (vote === 'up') up++;
      if (vote === 'down') {
        down++;
        if (view.failingSince !== null)
          firstFailed = Math.min(firstFailed ?? view.failingSince, view.failingSince);
      }
    }
    if (down >= this.options.quorum) return { status: 'down', firstFailedProbeAt: firstFailed };
    if (up >= this.options.quorum) return { status: 'up', firstFailedProbeAt: null };
    return undefined;
  }

  /** Every checker's view with its current vote. */
  views(now: number): Record<string, CheckerView> {
    const out: Record<string, CheckerView> = {};
    for (const [checker, view] of this.#views) out[checker] = { ...view, vote: this.#vote(view, now) };
    return out;
  }

  /** Failing components in the fresh observations. */
  failingComponents(now: number): string[] {
    const all = new Set<string>();
    for (const view of this.#views.values())
      if (now - view.lastAt <= this.options.maxAgeMs) for (const c of view.failingComponents) all.add(c);
    return [...all].sort();
  }
}

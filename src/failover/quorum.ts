import type { CheckerView, Degradation, FailingCheck, Observation } from './types.js';

export interface Verdict {
  status: 'up' | 'down';
  /** For down: the earliest start of a failing (or, for a degraded region, not passing) streak among the checkers voting down. */
  firstFailedProbeAt: number | null;
  /** For down: why most of the checkers voting down do so. */
  cause?: 'failures' | 'degraded';
}

/** Most failing checks kept per region in a verdict or a degradation (a region has a handful). */
const MAX_FAILING = 32;

/**
 * What each checker has seen of one region, and the verdict of a quorum of them. A region that
 * refuses or does not answer is dead; one that answers late while it serves is busy. So a checker
 * votes `down` after `failureThreshold` failed probes since its last passing one, or when the
 * region has not passed for `degradedBudgetMs` (and at least `failureThreshold` probes); `up`
 * after `recoveryThreshold` consecutive passing probes; and not at all in between, or when its
 * latest observation is older than `maxAgeMs` (it is cut off, or dead). A verdict needs `quorum`
 * votes; otherwise there is none and the region keeps its status, so one checker's own network
 * trouble moves nothing.
 */
export class RegionVotes {
  readonly #views = new Map<string, Omit<CheckerView, 'vote'>>();

  constructor(
    private readonly options: {
      failureThreshold: number;
      recoveryThreshold: number;
      quorum: number;
      maxAgeMs: number;
      degradedBudgetMs: number;
    },
  ) {}

  /** Counts one observation; one older than the checker's latest is ignored (delivered out of order). */
  add(o: Observation): boolean {
    const previous = this.#views.get(o.checker);
    if (previous && o.at < previous.lastAt) return false;
    const passed = o.outcome === 'pass';
    const failed = o.outcome === 'fail';
    this.#views.set(o.checker, {
      lastAt: o.at,
      outcome: o.outcome,
      consecutiveFailures: passed ? 0 : (previous?.consecutiveFailures ?? 0) + (failed ? 1 : 0),
      consecutiveNotPassing: passed ? 0 : (previous?.consecutiveNotPassing ?? 0) + 1,
      consecutiveSuccesses: passed ? (previous?.consecutiveSuccesses ?? 0) + 1 : 0,
      failingSince: passed ? null : (previous?.failingSince ?? (failed ? o.at : null)),
      degradedSince: passed ? null : (previous?.degradedSince ?? o.at),
      failingComponents: o.failingComponents,
      failing: o.failing,
      latencyMs: o.latencyMs,
      ...(o.error === undefined ? {} : { error: o.error }),
    });
    return true;
  }

  #fresh(view: Omit<CheckerView, 'vote'>, now: number): boolean {
    return now - view.lastAt <= this.options.maxAgeMs;
  }

  #vote(view: Omit<CheckerView, 'vote'>, now: number): Pick<CheckerView, 'vote' | 'downBecause'> {
    const { failureThreshold, recoveryThreshold, degradedBudgetMs } = this.options;
    if (!this.#fresh(view, now)) return { vote: 'none' };
    if (view.consecutiveFailures >= failureThreshold) return { vote: 'down', downBecause: 'failures' };
    // Measured to the end of the latest probe: a region answering each probe just past its
    // timeout has been slow for as long as it took to answer too.
    if (
      view.degradedSince !== null &&
      view.consecutiveNotPassing >= failureThreshold &&
      view.lastAt + view.latencyMs - view.degradedSince >= degradedBudgetMs
    )
      return { vote: 'down', downBecause: 'degraded' };
    if (view.consecutiveSuccesses >= recoveryThreshold) return { vote: 'up' };
    return { vote: 'none' };
  }

  verdict(now: number): Verdict | undefined {
    let up = 0;
    let down = 0;
    let byFailures = 0;
    let firstFailed: number | null = null;
    for (const view of this.#views.values()) {
      const { vote, downBecause } = this.#vote(view, now);
      if (vote === 'up') up++;
      if (vote !== 'down') continue;
      down++;
      if (downBecause === 'failures') byFailures++;
      const start = downBecause === 'failures' ? view.failingSince : view.degradedSince;
      if (start !== null) firstFailed = Math.min(firstFailed ?? start, start);
    }
    if (down >= this.options.quorum)
      return {
        status: 'down',
        firstFailedProbeAt: firstFailed,
        cause: byFailures * 2 >= down ? 'failures' : 'degraded',
      };
    if (up >= this.options.quorum) return { status: 'up', firstFailedProbeAt: null };
    return undefined;
  }

  /**
   * The region as a quorum of fresh checkers sees it slow or failing while no verdict takes it
   * down: since when, until when the budget lasts, the worst latency and what fails.
   */
  degradation(now: number): Degradation | null {
    const seeing = [...this.#views.values()].filter(
      (v) => this.#fresh(v, now) && v.degradedSince !== null && this.#vote(v, now).vote !== 'down',
    );
    if (seeing.length < this.options.quorum) return null;
    const since = Math.min(...seeing.map((v) => v.degradedSince as number));
    return {
      since,
      budgetEndsAt: since + this.options.degradedBudgetMs,
      latencyMs: Math.max(...seeing.map((v) => v.latencyMs)),
      failing: mergeFailing(seeing),
    };
  }

  /** Every checker's view with its current vote. */
  views(now: number): Record<string, CheckerView> {
    const out: Record<string, CheckerView> = {};
    for (const [checker, view] of this.#views) out[checker] = { ...view, ...this.#vote(view, now) };
    return out;
  }

  /** Failing components in the fresh observations. */
  failingComponents(now: number): string[] {
    const all = new Set<string>();
    for (const view of this.#views.values())
      if (this.#fresh(view, now)) for (const c of view.failingComponents) all.add(c);
    return [...all].sort();
  }

  /** Failing checks in the fresh observations, one per check (the first checker's). */
  failing(now: number): FailingCheck[] {
    return mergeFailing([...this.#views.values()].filter((v) => this.#fresh(v, now)));
  }
}

function mergeFailing(views: ReadonlyArray<Pick<CheckerView, 'failing'>>): FailingCheck[] {
  const byCheck = new Map<string, FailingCheck>();
  for (const view of views) for (const f of view.failing) if (!byCheck.has(f.check)) byCheck.set(f.check, f);
  return [...byCheck.values()].slice(0, MAX_FAILING);
}

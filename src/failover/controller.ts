import type { Logger } from 'pino';
import { type Clock, REGION_NAME_PATTERN, systemClock, uuidv7 } from '../common/index.js';
import {
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_DEGRADED_BUDGET_MS,
  DEFAULT_FAILBACK,
  DEFAULT_FAILURE_THRESHOLD,
  DEFAULT_RECOVERY_THRESHOLD,
  DEFAULT_STABLE_PERIOD_MS,
  type FailbackMode,
} from './config.js';
import {
  FailoverConfigError,
  NoFailbackTargetError,
  NoOverrideError,
  UnknownCheckerError,
  UnknownObservedRegionError,
  UnknownRegionError,
} from './errors.js';
import {
  checkPositiveInt,
  checkRegions,
  DEFAULT_EVALUATE_EVERY_MS,
  defaultObservationMaxAgeMs,
  quorumOf,
} from './options.js';
import { RegionVotes, type Verdict } from './quorum.js';
import type { FailoverStore } from './store.js';
import {
  type ControllerMode,
  type Decision,
  type FailoverEvent,
  type FailoverRegion,
  type FailoverState,
  type NewEvent,
  type Observation,
  type ObservationSink,
  type Override,
  type PersistedState,
  type RegionHealth,
  type SwitchEvent,
  type SwitchStep,
  type SwitchTrigger,
  systemTimers,
  type Timers,
} from './types.js';

/** Records when a step of a switch finished, and its outcome, on the switch's event. */
export type StepRecorder = (step: SwitchStep, detail?: unknown, at?: number) => void;

/** What a switch sets off: DNS, notices, webhooks, disconnects (see SwitchExecutor). */
export interface SwitchActions {
  /** Tells the followers (DNS) the current decision, at start; no notices. */
  announce(decision: Decision): Promise<void>;
  execute(event: SwitchEvent, record: StepRecorder): Promise<void>;
}

/** Something that wants to know when the state changes (metrics, the status page). */
export type StateListener = (events: FailoverEvent[]) => void;

export interface FailoverControllerOptions {
  /** Every region, with its priority (lower is preferred) and API URL. */
  regions: FailoverRegion[];
  /** Ids of the configured checkers; a majority of them is the quorum. */
  checkers: string[];
  store: FailoverStore;
  /** Default 3 consecutive failed probes. */
  failureThreshold?: number;
  /** Default 5 consecutive good probes. */
  recoveryThreshold?: number;
  /** Default 'manual'. */
  failback?: FailbackMode;
  /** For failback 'auto': how long the preferred region must have been up, in ms. Default 60,000. */
  stablePeriodMs?: number;
  /** A region not passing its probes for longer (slow answers) is declared down, in ms. Default 15,000. */
  degradedBudgetMs?: number;
  /** A checker silent for longer does not vote, in ms. Default 3 × 1,000 + 3,000 (interval, give-up time). */
  observationMaxAgeMs?: number;
  /** Re-evaluation period without observations, in ms. Default 250. */
  evaluateEveryMs?: number;
  actions?: SwitchActions;
  clock?: Clock;
  timers?: Timers;
  logger?: Logger;
}

/**
 * Decides the active region. Health comes from a quorum of checkers (RegionVotes); the active
 * region is the highest-priority healthy one; routing controls override health; every switch
 * increments the fencing epoch. Every change of state is committed to the store with its event
 * before anyone is told, and a restarted controller holds its persisted decision until every
 * region has a fresh quorum verdict, so a restart never flaps.
 */
export class FailoverController implements ObservationSink {
  readonly regions: readonly FailoverRegion[];
  readonly checkers: readonly string[];
  readonly quorum: number;
  readonly failback: FailbackMode;
  readonly #store: FailoverStore;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #logger: Logger | undefined;
  readonly #actions: SwitchActions | undefined;
  readonly #stablePeriodMs: number;
  readonly #evaluateEveryMs: number;
  readonly #votes = new Map<string, RegionVotes>();
  readonly #decidedSinceStart = new Set<string>();
  /** Regions logged as degraded, so the log says it once when it starts and once when it ends. */
  readonly #degraded = new Set<string>();
  readonly #listeners = new Set<StateListener>();
  #state: PersistedState;
  #holdingSince: number | null;
  #lastSwitch: SwitchEvent | null;
  #timer: unknown;
  #running = false;
  #queue: Promise<void> = Promise.resolve();

  constructor(options: FailoverControllerOptions) {
    this.regions = checkRegions(options.regions);
    if (options.checkers.length === 0) throw new FailoverConfigError('failover needs at least one checker');
    for (const c of options.checkers)
      if (!REGION_NAME_PATTERN.test(c))
        throw new FailoverConfigError(`checker id '${c}' is not ${REGION_NAME_PATTERN}`);
    this.checkers = [...new Set(options.checkers)];
    this.quorum = quorumOf(this.checkers.length);
    this.failback = options.failback ?? DEFAULT_FAILBACK;
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#timers = options.timers ?? systemTimers;
    this.#logger = options.logger;
    this.#actions = options.actions;
    this.#stablePeriodMs = checkPositiveInt(
      'stablePeriodMs',
      options.stablePeriodMs ?? DEFAULT_STABLE_PERIOD_MS,
      0,
    );
    this.#evaluateEveryMs = checkPositiveInt(
      'evaluateEveryMs',
      options.evaluateEveryMs ?? DEFAULT_EVALUATE_EVERY_MS,
    );
    const voteOptions = {
      failureThreshold: checkPositiveInt(
        'failureThreshold',
        options.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD,
      ),
      recoveryThreshold: checkPositiveInt(
        'recoveryThreshold',
        options.recoveryThreshold ?? DEFAULT_RECOVERY_THRESHOLD,
      ),
      quorum: this.quorum,
      maxAgeMs: checkPositiveInt(
        'observationMaxAgeMs',
        options.observationMaxAgeMs ??
          defaultObservationMaxAgeMs(DEFAULT_CHECK_INTERVAL_MS, DEFAULT_CHECK_TIMEOUT_MS),
      ),
      degradedBudgetMs: checkPositiveInt(
        'degradedBudgetMs',
        options.degradedBudgetMs ?? DEFAULT_DEGRADED_BUDGET_MS,
        0,
      ),
    };
    for (const r of this.regions) this.#votes.set(r.name, new RegionVotes(voteOptions));

    const now = this.#clock.now();
    const saved = options.store.loadState();
    this.#state = saved ? this.#adopt(saved) : this.#initial(now);
    if (!saved) this.#store.commit(this.#state, []);
    this.#lastSwitch = options.store.lastSwitch() ?? null;
    this.#holdingSince = now;
  }

  #initial(now: number): PersistedState {
    const first = this.regions[0] as FailoverRegion;
    return {
      activeRegion: first.name,
      epoch: 0,
      decidedAt: now,
      lastSwitchId: null,
      override: null,
      noHealthyRegion: false,
      health: Object.fromEntries(this.regions.map((r) => [r.name, { status: 'unknown', since: null }])),
    };
  }

  /** A persisted state from a controller whose regions may have changed since. */
  #adopt(saved: PersistedState): PersistedState {
    const known = new Set(this.regions.map((r) => r.name));
    const health = Object.fromEntries(
      this.regions.map((r) => [r.name, saved.health[r.name] ?? { status: 'unknown' as const, since: null }]),
    );
    const override = saved.override && known.has(saved.override.region) ? saved.override : null;
    if (known.has(saved.activeRegion)) return { ...saved, override, health };
    // The active region left the configuration: keep the epoch, start from the preferred region.
    this.#logger?.warn({ region: saved.activeRegion }, 'the persisted active region is no longer configured');
    return { ...saved, activeRegion: (this.regions[0] as FailoverRegion).name, override, health };
  }

  /** Announces the current decision and starts re-evaluating on a timer. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#arm();
    await this.#actions?.announce(this.decision());
  }

  #arm(): void {
    this.#timer = this.#timers.setTimeout(() => {
      if (!this.#running) return;
      try {
        this.evaluate();
      } catch (error) {
        this.#logger?.error({ err: error }, 'failover evaluation failed');
      }
      this.#arm();
    }, this.#evaluateEveryMs);
  }

  /** Stops the timer and waits for the switches in progress to finish their actions. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.idle();
  }

  /** Resolves when every switch so far has run its actions. */
  async idle(): Promise<void> {
    let current: Promise<void>;
    do {
      current = this.#queue;
      await current;
    } while (current !== this.#queue);
  }

  /** The controller's clock: remote observations are stamped with it. */
  now(): number {
    return this.#clock.now();
  }

  onChange(listener: StateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  decision(): Decision {
    return {
      activeRegion: this.#state.activeRegion,
      epoch: this.#state.epoch,
      at: this.#state.decidedAt,
      eventId: this.#state.lastSwitchId,
    };
  }

  /** Checks then counts observations (all or none), and re-evaluates. */
  report(observations: Observation[]): void {
    for (const o of observations) {
      if (!this.checkers.includes(o.checker)) throw new UnknownCheckerError(o.checker, this.checkers);
      if (!this.#votes.has(o.region)) throw new UnknownObservedRegionError(o.region);
    }
    for (const o of observations) this.#votes.get(o.region)?.add(o);
    this.evaluate();
  }

  /** Applies the quorum verdicts and decides; called on every report and on the timer. */
  evaluate(): void {
    const now = this.#clock.now();
    const events: NewEvent[] = [];
    const verdicts = new Map<string, Verdict>();
    for (const region of this.regions) {
      const votes = this.#votes.get(region.name);
      if (!votes) continue;
      this.#noteDegradation(region.name, votes, now);
      const verdict = votes.verdict(now);
      if (!verdict) continue;
      verdicts.set(region.name, verdict);
      this.#decidedSinceStart.add(region.name);
      const health = this.#health(region.name);
      if (health.status === verdict.status) continue;
      const failing = votes.failing(now);
      const cause = verdict.status === 'up' ? 'recovered' : (verdict.cause ?? 'failures');
      events.push({
        type: 'region-health',
        id: uuidv7(now),
        at: now,
        region: region.name,
        from: health.status,
        to: verdict.status,
        failingComponents: votes.failingComponents(now),
        cause,
        failing,
        checkers: votes.views(now),
      });
      this.#state.health[region.name] = { status: verdict.status, since: now };
      this.#logger?.warn(
        { region: region.name, status: verdict.status, cause, failing },
        'region health changed',
      );
    }
    if (this.#holdingSince !== null && this.regions.every((r) => this.#decidedSinceStart.has(r.name))) {
      this.#holdingSince = null;
      events.push({ type: 'holding-ended', id: uuidv7(now), at: now });
    }
    if (this.#holdingSince === null) this.#decide(now, verdicts, events);
    if (events.length > 0) this.#commit(events);
  }

  /** Logs once when a region starts being degraded (slow, not down) and once when it stops. */
  #noteDegradation(region: string, votes: RegionVotes, now: number): void {
    const degradation = votes.degradation(now);
    if (degradation && !this.#degraded.has(region)) {
      this.#degraded.add(region);
      this.#logger?.warn(
        {
          region,
          latencyMs: degradation.latencyMs,
          failing: degradation.failing,
          until: degradation.budgetEndsAt,
        },
        'region degraded: answering slowly; it is moved only if this lasts past the degraded budget',
      );
    } else if (!degradation && this.#degraded.delete(region)) {
      this.#logger?.info({ region }, 'region no longer degraded');
    }
  }

  #health(region: string) {
    return this.#state.health[region] ?? { status: 'unknown' as const, since: null };
  }

  #priority(region: string): number {
    return this.regions.find((r) => r.name === region)?.priority ?? Number.POSITIVE_INFINITY;
  }

  #healthy(): FailoverRegion[] {
    return this.regions.filter((r) => this.#health(r.name).status === 'up');
  }

  #decide(now: number, verdicts: Map<string, Verdict>, events: NewEvent[]): void {
    const healthy = this.#healthy();
    const best = healthy[0];
    if (!best) {
      if (!this.#state.noHealthyRegion) {
        this.#state.noHealthyRegion = true;
        events.push({
          type: 'no-healthy-region',
          id: uuidv7(now),
          at: now,
          keeping: this.#state.activeRegion,
        });
        this.#logger?.error(
          { keeping: this.#state.activeRegion },
          'NO REGION IS HEALTHY: keeping the active region as it is; the fleet is not moved',
        );
      }
      return;
    }
    if (this.#state.noHealthyRegion) {
      this.#state.noHealthyRegion = false;
      events.push({
        type: 'healthy-region-again',
        id: uuidv7(now),
        at: now,
        regions: healthy.map((r) => r.name),
      });
      this.#logger?.warn({ regions: healthy.map((r) => r.name) }, 'a region is healthy again');
    }
    if (this.#state.override) return;
    const active = this.#state.activeRegion;
    if (this.#health(active).status !== 'up') {
      const cause = verdicts.get(active);
      events.push(
        this.#switch(
          now,
          best.name,
          { type: 'health', region: active, status: this.#health(active).status },
          {
            firstFailedProbeAt: cause?.status === 'down' ? cause.firstFailedProbeAt : null,
            thresholdCrossedAt: cause?.status === 'down' ? (this.#health(active).since ?? now) : null,
          },
        ),
      );
      return;
    }
    if (best.priority >= this.#priority(active) || this.failback !== 'auto') return;
    const upSince = this.#health(best.name).since ?? now;
    if (now - upSince >= this.#stablePeriodMs)
      events.push(this.#switch(now, best.name, { type: 'auto-failback', stableSinceAt: upSince }, {}));
  }

  #switch(
    now: number,
    to: string,
    trigger: SwitchTrigger,
    cause: { firstFailedProbeAt?: number | null; thresholdCrossedAt?: number | null },
  ): NewEvent {
    const event: Omit<SwitchEvent, 'seq'> = {
      type: 'switch',
      id: uuidv7(now),
      at: now,
      from: this.#state.activeRegion,
      to,
      epoch: this.#state.epoch + 1,
      trigger,
      timings: {
        firstFailedProbeAt: cause.firstFailedProbeAt ?? null,
        thresholdCrossedAt: cause.thresholdCrossedAt ?? null,
        decidedAt: now,
        dnsUpdatedAt: null,
        noticesPublishedAt: null,
        disconnectsRequestedAt: null,
        webhooksCalledAt: null,
      },
      steps: {},
    };
    this.#state.activeRegion = to;
    this.#state.epoch = event.epoch;
    this.#state.decidedAt = now;
    this.#state.lastSwitchId = event.id;
    this.#logger?.warn({ from: event.from, to, epoch: event.epoch, trigger }, 'active region switched');
    return event;
  }

  #commit(events: NewEvent[]): FailoverEvent[] {
    const committed = this.#store.commit(this.#state, events);
    for (const event of committed) {
      if (event.type !== 'switch') continue;
      this.#lastSwitch = event;
      const actions = this.#actions;
      if (actions) {
        // One switch's actions at a time, in epoch order: a later switch's notices come last.
        this.#queue = this.#queue.then(() =>
          actions
            .execute(event, (step, detail, at) => this.recordStep(event.id, step, detail, at))
            .catch((error) => this.#logger?.error({ err: error, switch: event.id }, 'switch actions failed')),
        );
      }
    }
    for (const listener of this.#listeners) listener(committed);
    return committed;
  }

  /** Records on a switch's event when one of its steps finished (default now) and how it went. */
  recordStep(eventId: string, step: SwitchStep, detail?: unknown, at?: number): void {
    const stored = this.#lastSwitch?.id === eventId ? this.#lastSwitch : this.#store.getEvent(eventId);
    if (stored?.type !== 'switch') return;
    const updated: SwitchEvent = {
      ...stored,
      timings: { ...stored.timings, [`${step}At`]: at ?? this.#clock.now() },
      steps: { ...stored.steps, ...(detail === undefined ? {} : { [step]: detail }) },
    };
    this.#store.updateSwitch(updated);
    if (this.#lastSwitch?.id === eventId) this.#lastSwitch = updated;
  }

  #region(name: string): FailoverRegion {
    const region = this.regions.find((r) => r.name === name);
    if (!region)
      throw new UnknownRegionError(
        name,
        this.regions.map((r) => r.name),
      );
    return region;
  }

  /**
   * Routing control: pins the active region to `to` whatever health says, until `failback` or
   * `clearOverride`. Allowed onto an unhealthy region: the operator may know better.
   */
  switchTo(input: { to: string; reason: string; who: string }): {
    switch: SwitchEvent | null;
    state: FailoverState;
  } {
    this.#region(input.to);
    const now = this.#clock.now();
    const override: Override = { region: input.to, reason: input.reason, who: input.who, at: now };
    this.#state.override = override;
    const events: NewEvent[] = [{ type: 'override-set', id: uuidv7(now), at: now, override }];
    if (input.to !== this.#state.activeRegion)
      events.push(this.#switch(now, input.to, { type: 'manual', who: input.who, reason: input.reason }, {}));
    return this.#answer(this.#commit(events));
  }

  /**
   * Routing control: back to the highest-priority healthy region, and back to following health.
   * Refused (409) when that is already the active region and no override is set.
   */
  failbackNow(input: { reason: string; who: string }): { switch: SwitchEvent | null; state: FailoverState } {
    const now = this.#clock.now();
    const best = this.#healthy()[0];
    const previous = this.#state.override;
    if (!best || (best.name === this.#state.activeRegion && !previous))
      throw new NoFailbackTargetError(this.#state.activeRegion);
    const events: NewEvent[] = [];
    if (previous) {
      this.#state.override = null;
      events.push({
        type: 'override-cleared',
        id: uuidv7(now),
        at: now,
        who: input.who,
        reason: input.reason,
        previous,
      });
    }
    if (best.name !== this.#state.activeRegion)
      events.push(
        this.#switch(now, best.name, { type: 'failback', who: input.who, reason: input.reason }, {}),
      );
    return this.#answer(this.#commit(events));
  }

  /** Removes the routing control; health decides again at once (which may switch). */
  clearOverride(input: { reason: string; who: string }): {
    switch: SwitchEvent | null;
    state: FailoverState;
  } {
    const previous = this.#state.override;
    if (!previous) throw new NoOverrideError();
    const now = this.#clock.now();
    this.#state.override = null;
    const events: NewEvent[] = [
      { type: 'override-cleared', id: uuidv7(now), at: now, who: input.who, reason: input.reason, previous },
    ];
    if (this.#holdingSince === null) this.#decide(now, new Map(), events);
    return this.#answer(this.#commit(events));
  }

  #answer(committed: FailoverEvent[]): { switch: SwitchEvent | null; state: FailoverState } {
    const found = committed.find((e): e is SwitchEvent => e.type === 'switch');
    return { switch: found ?? null, state: this.state() };
  }

  mode(): ControllerMode {
    if (this.#state.override) return { type: 'override', override: this.#state.override };
    if (this.#holdingSince !== null) return { type: 'holding', since: this.#holdingSince };
    return { type: 'health' };
  }

  state(): FailoverState {
    const now = this.#clock.now();
    const regions: RegionHealth[] = this.regions.map((r) => {
      const votes = this.#votes.get(r.name);
      const health = this.#health(r.name);
      return {
        region: r.name,
        priority: r.priority,
        status: health.status,
        since: health.since,
        failingComponents: votes?.failingComponents(now) ?? [],
        degraded: health.status === 'down' ? null : (votes?.degradation(now) ?? null),
        checkers: votes?.views(now) ?? {},
      };
    });
    const best = this.#healthy()[0];
    return {
      activeRegion: this.#state.activeRegion,
      epoch: this.#state.epoch,
      decidedAt: this.#state.decidedAt,
      mode: this.mode(),
      failback: this.failback,
      noHealthyRegion: this.#state.noHealthyRegion,
      failbackAvailable:
        best && best.priority < this.#priority(this.#state.activeRegion) && !this.#state.override
          ? best.name
          : null,
      quorum: this.quorum,
      checkers: [...this.checkers],
      regions,
      lastSwitch: this.#lastSwitch,
    };
  }

  /** The decision log, oldest first, after seq `after`. */
  events(options: { after?: number; limit: number; type?: FailoverEvent['type'] }): FailoverEvent[] {
    return this.#store.events(options);
  }
}

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
  NotLeaderError,
  UnknownCheckerError,
  UnknownObservedRegionError,
  UnknownRegionError,
} from './errors.js';
import type { Leadership } from './leadership.js';
import {
  checkPositiveInt,
  checkRegions,
  DEFAULT_EVALUATE_EVERY_MS,
  defaultObservationMaxAgeMs,
  quorumOf,
} from './options.js';
import { RegionVotes, type Verdict } from './quorum.js';
import type { ControlStore, EventQuery } from './store.js';
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
  store: ControlStore;
  /**
   * Which node decides, with several control nodes (etcd). Absent: this controller is the only one
   * and always decides. A node that does not lead counts observations, follows the committed
   * decision and announces it to its sinks, and decides nothing.
   */
  leadership?: Leadership;
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
 * region has a fresh quorum verdict, so a restart never flaps. With several control nodes only the
 * leader decides; the others follow the committed state, and a node that takes over finishes the
 * last switch when its notices were not published.
 */
export class FailoverController implements ObservationSink {
  readonly regions: readonly FailoverRegion[];
  readonly checkers: readonly string[];
  readonly quorum: number;
  readonly failback: FailbackMode;
  readonly #store: ControlStore;
  readonly #leadership: Leadership | undefined;
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
  /** The last committed state: what the decision, the state page and the metrics show. */
  #state: PersistedState;
  #holdingSince: number | null;
  #lastSwitch: SwitchEvent | null = null;
  #timer: unknown;
  #running = false;
  /** True once this node loaded the committed state as the leader, until it stops leading. */
  #leading = false;
  /** Switch actions, one switch at a time in epoch order. */
  #queue: Promise<void> = Promise.resolve();
  /** Loads, evaluations, commits and routing controls, one at a time. */
  #exclusive: Promise<unknown> = Promise.resolve();
  #pendingEvaluation: Promise<void> | undefined;
  /** Step reports written to the store, in order. */
  #stepWrites: Promise<void> = Promise.resolve();
  /** Set while the follower's reads of the committed state fail, so the log says it once. */
  #followError: string | null = null;
  #unsubscribe: (() => void) | undefined;

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
    this.#leadership = options.leadership;
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
    // Until the store is read (start), the preferred region with epoch 0: never announced as such.
    this.#state = this.#initial(now);
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
      holdingSince: now,
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

  /**
   * Reads the committed state and, as the leader (or the only node), takes it over and announces
   * it; a node that does not lead reads and announces what the leader committed. Then re-evaluates
   * (or follows) on a timer.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const leadership = this.#leadership;
    if (leadership) {
      this.#unsubscribe = leadership.onChange((leading) => {
        if (leading)
          void this.#serially(() => this.#takeOver()).catch((error) => this.#takeOverFailed(error));
        else this.#stepDown('lost the lease');
      });
    }
    if (!leadership || leadership.isLeader()) await this.#serially(() => this.#takeOver());
    else await this.#serially(() => this.#follow());
    this.#arm();
  }

  #takeOverFailed(error: unknown): void {
    this.#logger?.error(
      { err: error },
      'taking over as the leader failed; deciding nothing until it succeeds',
    );
  }

  #arm(): void {
    this.#timer = this.#timers.setTimeout(() => {
      if (!this.#running) return;
      const tick = this.#leading
        ? this.evaluate()
        : this.#leadership?.isLeader()
          ? this.#serially(() => this.#takeOver())
          : this.#serially(() => this.#follow());
      tick
        .catch((error) => this.#logger?.error({ err: error }, 'failover evaluation failed'))
        .finally(() => {
          if (this.#running) this.#arm();
        });
    }, this.#evaluateEveryMs);
  }

  /** Stops the timer and waits for the switches in progress to finish their actions. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#unsubscribe?.();
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.idle();
  }

  /** Resolves when every evaluation, switch and step report so far is done. */
  async idle(): Promise<void> {
    let current: [unknown, unknown, unknown];
    do {
      current = [this.#exclusive, this.#queue, this.#stepWrites];
      await Promise.allSettled(current);
    } while (current[0] !== this.#exclusive || current[1] !== this.#queue || current[2] !== this.#stepWrites);
  }

  /** Runs `work` after every load, evaluation and routing control before it. */
  #serially<T>(work: () => Promise<T> | T): Promise<T> {
    const run = this.#exclusive.then(work, work);
    this.#exclusive = run.catch(() => undefined);
    return run;
  }

  /** True while this controller may decide: it took over, and (with several nodes) still leads. */
  leads(): boolean {
    return this.#leading && (this.#leadership?.isLeader() ?? true);
  }

  /** Who leads, as this node last saw it (the single node: itself). */
  leader() {
    return this.#leadership?.leader() ?? null;
  }

  /** This node's name, with several control nodes. */
  get node(): string | undefined {
    return this.#leadership?.node;
  }

  /**
   * Becomes the deciding node: reads the committed state (the store fences the next commit on it),
   * holds it until every region has a fresh quorum verdict, announces it, and finishes the last
   * switch when the node that made it stopped before its notices were published.
   */
  async #takeOver(): Promise<void> {
    if (this.#leading || (this.#leadership && !this.#leadership.isLeader())) return;
    const now = this.#clock.now();
    const stored = await this.#store.load();
    if (this.#leadership && !this.#leadership.isLeader()) return;
    const state = stored.state ? this.#adopt(stored.state) : this.#initial(now);
    // Committed at once: the other nodes show the hold, and a fenced store proves the lease here.
    state.holdingSince = now;
    await this.#store.commit(state, []);
    this.#state = state;
    this.#lastSwitch = stored.lastSwitch ?? null;
    this.#holdingSince = now;
    this.#decidedSinceStart.clear();
    this.#leading = true;
    if (this.#leadership)
      this.#logger?.warn(
        { node: this.#leadership.node, activeRegion: state.activeRegion, epoch: state.epoch },
        'this control node leads: deciding from the committed state',
      );
    await this.#actions?.announce(this.decision());
    const last = this.#lastSwitch;
    if (last && last.timings.noticesPublishedAt === null && last.epoch === state.epoch) {
      this.#logger?.warn(
        { switch: last.id, to: last.to, epoch: last.epoch },
        'the last switch was not finished (its notices were not published): finishing it',
      );
      this.#runActions(last);
    }
  }

  /** Stops deciding (the lease is gone or a commit was fenced); the switch actions already queued run on. */
  #stepDown(why: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#logger?.warn(
      { node: this.#leadership?.node, why },
      'this control node no longer leads: deciding nothing',
    );
  }

  /** A node that does not lead: reads the committed state, and announces a new decision to its sinks. */
  async #follow(): Promise<void> {
    if (this.#leading) return;
    let stored: Awaited<ReturnType<ControlStore['load']>>;
    try {
      stored = await this.#store.load();
    } catch (error) {
      const message = (error as Error).message;
      if (this.#followError === null)
        this.#logger?.warn({ err: error }, 'cannot read the committed decision; serving the last one read');
      this.#followError = message;
      return;
    }
    if (this.#followError !== null) this.#logger?.info('reading the committed decision again');
    this.#followError = null;
    if (!stored.state || this.#leading) return;
    const before = this.decision();
    this.#state = this.#adopt(stored.state);
    this.#lastSwitch = stored.lastSwitch ?? null;
    const after = this.decision();
    if (before.epoch !== after.epoch || before.activeRegion !== after.activeRegion || !this.#announced) {
      this.#announced = true;
      await this.#actions?.announce(after);
    }
  }

  #announced = false;

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

  /**
   * Checks then counts observations (all or none), and re-evaluates. Every node counts them, so a
   * node that takes over decides from fresh votes at once.
   */
  async report(observations: Observation[]): Promise<void> {
    for (const o of observations) {
      if (!this.checkers.includes(o.checker)) throw new UnknownCheckerError(o.checker, this.checkers);
      if (!this.#votes.has(o.region)) throw new UnknownObservedRegionError(o.region);
    }
    for (const o of observations) this.#votes.get(o.region)?.add(o);
    // The votes are counted; an evaluation that fails (the store unreachable) is the controller's to report.
    return this.evaluate().catch((error) =>
      this.#logger?.error({ err: error }, 'failover evaluation failed'),
    );
  }

  /**
   * Applies the quorum verdicts and decides; called on every report and on the timer. Does nothing
   * on a node that does not lead. Evaluations asked while one waits to run are that one.
   */
  evaluate(): Promise<void> {
    if (this.#pendingEvaluation) return this.#pendingEvaluation;
    const run = this.#serially(async () => {
      this.#pendingEvaluation = undefined;
      if (this.leads()) await this.#evaluateNow();
    });
    this.#pendingEvaluation = run;
    return run;
  }

  async #evaluateNow(): Promise<void> {
    const now = this.#clock.now();
    const draft = structuredClone(this.#state);
    const events: NewEvent[] = [];
    const verdicts = new Map<string, Verdict>();
    let holdingEnds = false;
    for (const region of this.regions) {
      const votes = this.#votes.get(region.name);
      if (!votes) continue;
      this.#noteDegradation(region.name, votes, now);
      const verdict = votes.verdict(now);
      if (!verdict) continue;
      verdicts.set(region.name, verdict);
      this.#decidedSinceStart.add(region.name);
      const health = healthOf(draft, region.name);
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
      draft.health[region.name] = { status: verdict.status, since: now };
      this.#logger?.warn(
        { region: region.name, status: verdict.status, cause, failing },
        'region health changed',
      );
    }
    if (this.#holdingSince !== null && this.regions.every((r) => this.#decidedSinceStart.has(r.name))) {
      holdingEnds = true;
      draft.holdingSince = null;
      events.push({ type: 'holding-ended', id: uuidv7(now), at: now });
    }
    if (this.#holdingSince === null || holdingEnds) this.#decide(draft, now, verdicts, events);
    if (events.length > 0) await this.#commit(draft, events);
    if (holdingEnds) this.#holdingSince = null;
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

  #priority(region: string): number {
    return this.regions.find((r) => r.name === region)?.priority ?? Number.POSITIVE_INFINITY;
  }

  #healthy(state: PersistedState): FailoverRegion[] {
    return this.regions.filter((r) => healthOf(state, r.name).status === 'up');
  }

  /** Decides on `state` (a draft), adding the events of what changed. */
  #decide(state: PersistedState, now: number, verdicts: Map<string, Verdict>, events: NewEvent[]): void {
    const healthy = this.#healthy(state);
    const best = healthy[0];
    if (!best) {
      if (!state.noHealthyRegion) {
        state.noHealthyRegion = true;
        events.push({
          type: 'no-healthy-region',
          id: uuidv7(now),
          at: now,
          keeping: state.activeRegion,
        });
        this.#logger?.error(
          { keeping: state.activeRegion },
          'NO REGION IS HEALTHY: keeping the active region as it is; the fleet is not moved',
        );
      }
      return;
    }
    if (state.noHealthyRegion) {
      state.noHealthyRegion = false;
      events.push({
        type: 'healthy-region-again',
        id: uuidv7(now),
        at: now,
        regions: healthy.map((r) => r.name),
      });
      this.#logger?.warn({ regions: healthy.map((r) => r.name) }, 'a region is healthy again');
    }
    if (state.override) return;
    const active = state.activeRegion;
    if (healthOf(state, active).status !== 'up') {
      const cause = verdicts.get(active);
      events.push(
        this.#switch(
          state,
          now,
          best.name,
          { type: 'health', region: active, status: healthOf(state, active).status },
          {
            firstFailedProbeAt: cause?.status === 'down' ? cause.firstFailedProbeAt : null,
            thresholdCrossedAt: cause?.status === 'down' ? (healthOf(state, active).since ?? now) : null,
          },
        ),
      );
      return;
    }
    if (best.priority >= this.#priority(active) || this.failback !== 'auto') return;
    const upSince = healthOf(state, best.name).since ?? now;
    if (now - upSince >= this.#stablePeriodMs)
      events.push(this.#switch(state, now, best.name, { type: 'auto-failback', stableSinceAt: upSince }, {}));
  }

  /** Switches `state` (a draft) to `to`, raising its epoch; returns the switch's event. */
  #switch(
    state: PersistedState,
    now: number,
    to: string,
    trigger: SwitchTrigger,
    cause: { firstFailedProbeAt?: number | null; thresholdCrossedAt?: number | null },
  ): NewEvent {
    const event: Omit<SwitchEvent, 'seq'> = {
      type: 'switch',
      id: uuidv7(now),
      at: now,
      from: state.activeRegion,
      to,
      epoch: state.epoch + 1,
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
    state.activeRegion = to;
    state.epoch = event.epoch;
    state.decidedAt = now;
    state.lastSwitchId = event.id;
    this.#logger?.warn({ from: event.from, to, epoch: event.epoch, trigger }, 'active region switched');
    return event;
  }

  /**
   * Commits `state` (a draft) with its events; only then is it the controller's state and are the
   * switches' actions run. A commit the store fences (this node no longer leads) changes nothing,
   * and this node stops deciding.
   */
  async #commit(state: PersistedState, events: NewEvent[]): Promise<FailoverEvent[]> {
    let committed: FailoverEvent[];
    try {
      committed = await this.#store.commit(state, events);
    } catch (error) {
      if (error instanceof NotLeaderError) this.#stepDown('a commit was fenced');
      throw error;
    }
    this.#state = state;
    for (const event of committed) {
      if (event.type !== 'switch') continue;
      this.#lastSwitch = event;
      this.#runActions(event);
    }
    for (const listener of this.#listeners) listener(committed);
    return committed;
  }

  /** Queues a switch's actions: one switch's at a time, in epoch order, so a later switch's notices come last. */
  #runActions(event: SwitchEvent): void {
    const actions = this.#actions;
    if (!actions) return;
    this.#queue = this.#queue.then(() =>
      actions
        .execute(event, (step, detail, at) => this.recordStep(event.id, step, detail, at))
        .catch((error) => this.#logger?.error({ err: error, switch: event.id }, 'switch actions failed')),
    );
  }

  /**
   * Records on a switch's event when one of its steps finished (default now) and how it went. The
   * writes to the store go one after the other, each of the event as it is by then.
   */
  recordStep(eventId: string, step: SwitchStep, detail?: unknown, at?: number): void {
    const when = at ?? this.#clock.now();
    const apply = (stored: SwitchEvent): SwitchEvent => ({
      ...stored,
      timings: { ...stored.timings, [`${step}At`]: when },
      steps: { ...stored.steps, ...(detail === undefined ? {} : { [step]: detail }) },
    });
    const current = this.#lastSwitch;
    if (current?.id === eventId) this.#lastSwitch = apply(current);
    this.#stepWrites = this.#stepWrites
      .then(async () => {
        const latest = this.#lastSwitch;
        if (latest?.id === eventId) return this.#store.updateSwitch(latest);
        const stored = await this.#store.getEvent(eventId);
        if (stored?.type === 'switch') await this.#store.updateSwitch(apply(stored));
      })
      .catch((error) =>
        this.#logger?.error({ err: error, switch: eventId, step }, 'the step of a switch was not recorded'),
      );
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

  /** A routing control's work, after every evaluation before it, on the leader only. */
  #control(
    work: (state: PersistedState, now: number) => NewEvent[],
  ): Promise<{ switch: SwitchEvent | null; state: FailoverState }> {
    return this.#serially(async () => {
      if (!this.leads()) throw new NotLeaderError(this.#leadership?.node ?? 'control', this.leader());
      const now = this.#clock.now();
      const draft = structuredClone(this.#state);
      const committed = await this.#commit(draft, work(draft, now));
      const found = committed.find((e): e is SwitchEvent => e.type === 'switch');
      return { switch: found ?? null, state: this.state() };
    });
  }

  /**
   * Routing control: pins the active region to `to` whatever health says, until `failback` or
   * `clearOverride`. Allowed onto an unhealthy region: the operator may know better.
   */
  switchTo(input: {
    to: string;
    reason: string;
    who: string;
  }): Promise<{ switch: SwitchEvent | null; state: FailoverState }> {
    return this.#control((state, now) => {
      this.#region(input.to);
      const override: Override = { region: input.to, reason: input.reason, who: input.who, at: now };
      state.override = override;
      const events: NewEvent[] = [{ type: 'override-set', id: uuidv7(now), at: now, override }];
      if (input.to !== state.activeRegion)
        events.push(
          this.#switch(state, now, input.to, { type: 'manual', who: input.who, reason: input.reason }, {}),
        );
      return events;
    });
  }

  /**
   * Routing control: back to the highest-priority healthy region, and back to following health.
   * Refused (409) when that is already the active region and no override is set.
   */
  failbackNow(input: {
    reason: string;
    who: string;
  }): Promise<{ switch: SwitchEvent | null; state: FailoverState }> {
    return this.#control((state, now) => {
      const best = this.#healthy(state)[0];
      const previous = state.override;
      if (!best || (best.name === state.activeRegion && !previous))
        throw new NoFailbackTargetError(state.activeRegion);
      const events: NewEvent[] = [];
      if (previous) {
        state.override = null;
        events.push({
          type: 'override-cleared',
          id: uuidv7(now),
          at: now,
          who: input.who,
          reason: input.reason,
          previous,
        });
      }
      if (best.name !== state.activeRegion)
        events.push(
          this.#switch(state, now, best.name, { type: 'failback', who: input.who, reason: input.reason }, {}),
        );
      return events;
    });
  }

  /** Removes the routing control; health decides again at once (which may switch). */
  clearOverride(input: {
    reason: string;
    who: string;
  }): Promise<{ switch: SwitchEvent | null; state: FailoverState }> {
    return this.#control((state, now) => {
      const previous = state.override;
      if (!previous) throw new NoOverrideError();
      state.override = null;
      const events: NewEvent[] = [
        {
          type: 'override-cleared',
          id: uuidv7(now),
          at: now,
          who: input.who,
          reason: input.reason,
          previous,
        },
      ];
      if (this.#holdingSince === null) this.#decide(state, now, new Map(), events);
      return events;
    });
  }

  mode(): ControllerMode {
    if (this.#state.override) return { type: 'override', override: this.#state.override };
    // The deciding node knows its hold; the others read it from the committed state.
    const holding = this.#leading ? this.#holdingSince : (this.#state.holdingSince ?? null);
    if (holding !== null) return { type: 'holding', since: holding };
    return { type: 'health' };
  }

  state(): FailoverState {
    const now = this.#clock.now();
    const regions: RegionHealth[] = this.regions.map((r) => {
      const votes = this.#votes.get(r.name);
      const health = healthOf(this.#state, r.name);
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
    const best = this.#healthy(this.#state)[0];
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
      control: { node: this.node ?? 'control', leads: this.leads(), leader: this.leader() },
    };
  }

  /** The decision log, oldest first, after seq `after`. */
  events(options: EventQuery): Promise<FailoverEvent[]> {
    return this.#store.events(options);
  }
}

/** A region's health in a state; unknown when the state has none for it. */
function healthOf(
  state: PersistedState,
  region: string,
): { status: RegionHealth['status']; since: number | null } {
  return state.health[region] ?? { status: 'unknown', since: null };
}

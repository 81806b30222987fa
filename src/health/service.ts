import type { Registry } from 'prom-client';
import { z } from 'zod';
import { type Clock, REGION_NAME_PATTERN, systemClock } from '../common/index.js';
import {
  DEFAULT_CHECKPOINT_TIMEOUT_MS,
  DEFAULT_CRITICAL_COMPONENTS,
  HEALTH_COMPONENTS,
  HEALTH_LIMITS,
  type HealthComponent,
} from './config.js';
import { DuplicateCheckpointError, InvalidCheckpointError, UnknownCheckpointError } from './errors.js';
import { HealthMetrics } from './metrics.js';
import { CheckpointRunner, type Outcome } from './runner.js';
import {
  type CheckEntry,
  type Checkpoint,
  DEFAULT_BUDGET_MARGIN_MS,
  type HealthResponse,
  type HealthStatus,
  MEASUREMENT_PATTERN,
  systemTimers,
  type Timers,
  worst,
} from './types.js';

export interface HealthServiceOptions {
  /** The region's name; the response's serviceId. */
  serviceId: string;
  /** iotdr's version; the response's version. Default '0.0.0'. */
  version?: string;
  /** The response's releaseId. Default: the version. */
  releaseId?: string;
  /** The response's description. Default 'iotdr region <serviceId>'. */
  description?: string;
  /** Timeout of each checkpoint that sets none, in ms. Default 1,000. */
  timeoutMs?: number;
  /** Components whose failing checkpoint fails the region; the others make it warn. Default: all but replication. */
  critical?: readonly HealthComponent[];
  /** What the endpoint may take beyond its longest checkpoint timeout, in ms. Default 250. */
  budgetMarginMs?: number;
  /**
   * A checkpoint's result is answered as is to every request within this many ms of the start of
   * its run, so requests cost at most one run per window, in ms. Default 0: every request that
   * finds no run in progress runs the checkpoint. A region sets `healthCacheWindowMs(…)`.
   */
  cacheMs?: number;
  /** Where the health metrics are registered; none when absent. */
  metrics?: Registry;
  clock?: Clock;
  timers?: Timers;
}

const optionsSchema = z.object({
  serviceId: z.string().min(1).max(128),
  version: z.string().min(1).max(64).default('0.0.0'),
  releaseId: z.string().min(1).max(128).optional(),
  description: z.string().max(500).optional(),
  timeoutMs: z.number().int().min(1).max(600_000).default(DEFAULT_CHECKPOINT_TIMEOUT_MS),
  critical: z.array(z.enum(HEALTH_COMPONENTS)).default([...DEFAULT_CRITICAL_COMPONENTS]),
  budgetMarginMs: z.number().int().min(0).max(60_000).default(DEFAULT_BUDGET_MARGIN_MS),
  cacheMs: z.number().int().min(0).max(HEALTH_LIMITS.cacheMs.max).default(0),
});

const checkpointSchema = z.object({
  name: z.string().regex(REGION_NAME_PATTERN, 'a lowercase letter, then lowercase letters, digits or -'),
  component: z.enum(HEALTH_COMPONENTS),
  measurement: z.string().regex(MEASUREMENT_PATTERN, 'a measurement name without a colon'),
  componentType: z.string().min(1).max(64),
  timeoutMs: z.number().int().min(1).max(600_000).optional(),
  critical: z.boolean().optional(),
  everyMs: z.number().int().min(1).max(86_400_000).optional(),
  probe: z.custom<Checkpoint['probe']>((v) => typeof v === 'function', 'a function'),
});

interface Registered {
  runner: CheckpointRunner;
  critical: boolean;
}

/**
 * The region's health: checkpoints run concurrently, each under its own timeout, so the answer
 * comes within `budgetMs` even when one hangs. A request shares a run in progress, or takes a
 * result younger than `cacheMs` as it is (its `ageMs` says how old), so no caller can make the
 * region probe more often than once per window. Owns no socket; the HTTP routes are in routes.ts.
 */
export class HealthService {
  readonly serviceId: string;
  readonly #settings: z.output<typeof optionsSchema>;
  readonly #critical: ReadonlySet<HealthComponent>;
  readonly #checkpoints = new Map<string, Registered>();
  readonly #metrics: HealthMetrics | undefined;
  readonly #clock: Clock;
  readonly #timers: Timers;

  constructor(options: HealthServiceOptions) {
    const { metrics, clock, timers, ...rest } = options;
    const parsed = optionsSchema.safeParse(rest);
    if (!parsed.success) throw new InvalidCheckpointError('health service options', parsed.error.issues);
    this.#settings = parsed.data;
    this.serviceId = parsed.data.serviceId;
    this.#critical = new Set(parsed.data.critical);
    this.#metrics = metrics ? new HealthMetrics(metrics) : undefined;
    this.#clock = clock ?? systemClock;
    this.#timers = timers ?? systemTimers;
  }

  /** Adds a checkpoint; its name must be new. */
  add(checkpoint: Checkpoint): this {
    const parsed = checkpointSchema.safeParse(checkpoint);
    if (!parsed.success) throw new InvalidCheckpointError('health checkpoint', parsed.error.issues);
    if (this.#checkpoints.has(checkpoint.name)) throw new DuplicateCheckpointError(checkpoint.name);
    const metrics = this.#metrics;
    this.#checkpoints.set(checkpoint.name, {
      critical: checkpoint.critical ?? this.#critical.has(checkpoint.component),
      runner: new CheckpointRunner({
        checkpoint,
        timeoutMs: checkpoint.timeoutMs ?? this.#settings.timeoutMs,
        cacheMs: this.#settings.cacheMs,
        clock: this.#clock,
        timers: this.#timers,
        onOutcome: (outcome) => metrics?.observe(checkpoint, outcome),
      }),
    });
    return this;
  }

  /** Names of the checkpoints, in the order they were added. */
  names(): string[] {
    return [...this.#checkpoints.keys()];
  }

  /**
   * The longest the endpoint takes: the longest timeout of the checkpoints a request waits for
   * (not the background ones) plus the margin, in ms. A checker's timeout should be at least this.
   */
  get budgetMs(): number {
    let longest = 0;
    for (const { runner } of this.#checkpoints.values())
      if (runner.checkpoint.everyMs === undefined) longest = Math.max(longest, runner.timeoutMs);
    return longest + this.#settings.budgetMarginMs;
  }

  /** Releases what the checkpoints keep between probes (the broker's health session). */
  async close(): Promise<void> {
    await Promise.allSettled(
      [...this.#checkpoints.values()].map(({ runner }) => runner.checkpoint.close?.()),
    );
  }

  /**
   * Answers every checkpoint in the health+json format: from a run in progress or younger than
   * `cacheMs`, else from a run started now (a background checkpoint answers its latest result).
   */
  async check(): Promise<HealthResponse> {
    const all = [...this.#checkpoints.values()];
    const outcomes = await Promise.all(all.map(async (r) => ({ ...r, outcome: await r.runner.run() })));
    const response = this.#respond(outcomes);
    this.#metrics?.overall(response.status);
    return response;
  }

  /** One checkpoint, answered as `check` does; UnknownCheckpointError (404) when there is none of that name. */
  async checkOne(name: string): Promise<HealthResponse> {
    const registered = this.#checkpoints.get(name);
    if (!registered) throw new UnknownCheckpointError(name, this.names());
    return this.#respond([{ ...registered, outcome: await registered.runner.run() }]);
  }

  #respond(results: Array<Registered & { outcome: Outcome }>): HealthResponse {
    const checks: Record<string, CheckEntry[]> = {};
    const contributions: HealthStatus[] = [];
    const problems: string[] = [];
    const now = this.#clock.now();
    for (const { runner, critical, outcome } of results) {
      const { checkpoint } = runner;
      const { result } = outcome;
      const entry: CheckEntry = {
        componentId: checkpoint.name,
        componentType: checkpoint.componentType,
        observedValue: result.observedValue,
        ...(result.observedUnit === undefined ? {} : { observedUnit: result.observedUnit }),
        status: result.status,
        time: new Date(outcome.time).toISOString(),
        ageMs: Math.max(0, now - outcome.time),
        ...(result.status === 'pass' || result.output === undefined ? {} : { output: result.output }),
        critical,
        ...(result.status === 'fail' && (outcome.end === 'timed-out' || outcome.end === 'skipped')
          ? { timedOut: true }
          : {}),
      };
      const key = `${checkpoint.component}:${checkpoint.measurement}`;
      const list = checks[key] ?? [];
      list.push(entry);
      checks[key] = list;
      // A non-critical checkpoint failing degrades the region without failing it.
      contributions.push(result.status === 'fail' && !critical ? 'warn' : result.status);
      if (result.status !== 'pass') problems.push(`${checkpoint.name}: ${result.output ?? result.status}`);
    }
    const status = worst(contributions);
    const s = this.#settings;
    return {
      status,
      version: s.version,
      releaseId: s.releaseId ?? s.version,
      serviceId: s.serviceId,
      description: s.description ?? `iotdr region ${s.serviceId}`,
      ...(status === 'pass' ? {} : { output: problems.join('; ') }),
      checks,
    };
  }
}

import type { Agent } from 'node:https';
import { type Clock, REGION_NAME_PATTERN, systemClock } from '../common/index.js';
import { HEALTH_ROUTES } from '../health/index.js';
import { ApiClient, CallError } from '../http/index.js';
import {
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_GIVE_UP_TIMEOUTS,
  MIN_CHECK_INTERVAL_MS,
} from './config.js';
import { FailoverConfigError } from './errors.js';
import { checkPositiveInt, DEFAULT_CHECKER_CRITICAL } from './options.js';
import { type Assessment, assessHealth, componentsOf, worstOutcome } from './probe.js';
import {
  type FailingCheck,
  type Observation,
  type ObservationSink,
  type ProbeOutcome,
  systemTimers,
  type Timers,
} from './types.js';

/** A health URL of one component of a region, probed besides /health. */
export interface ExtraHealthUrl {
  /** Names the check in observations, e.g. 'orders-app'. */
  name: string;
  /** The component it stands for, e.g. app, cnc, analytics. */
  component: string;
  url: string;
  /** Status that means healthy. Default 200. */
  expectedStatus?: number;
  /** Default: whether the component is in the checker's critical list. */
  critical?: boolean;
}

export interface CheckedRegion {
  name: string;
  /** Base URL of the region's API; the checker GETs `${url}/health`. */
  url: string;
  extra?: ExtraHealthUrl[];
  /** The checker's site agent for this region (mutual TLS; checks the region's certificate). */
  agent?: Agent;
}

export interface CheckerOptions {
  /** This checker's id, as configured at the controller (`^[a-z][a-z0-9-]{0,62}$`). */
  id: string;
  regions: CheckedRegion[];
  /** Where observations go: the controller, or an HttpObservationSink. */
  sink: ObservationSink;
  /** Time between the starts of two probes of a region, in ms. Default 1,000, minimum 100. */
  intervalMs?: number;
  /** An answer later than this is slow (the region is degraded, not down), in ms. Default 1,000. */
  timeoutMs?: number;
  /** A probe still unanswered after this fails (the region does not answer), in ms; ≥ timeoutMs. Default 3 × timeoutMs. */
  giveUpMs?: number;
  /** Components whose failure fails the probe, besides the region's own critical flags. Default broker, app, cnc, analytics. */
  critical?: readonly string[];
  clock?: Clock;
  timers?: Timers;
  /** Called with errors of the sink (a controller that cannot be reached); the checker keeps probing. */
  onError?: (error: unknown) => void;
}

/**
 * Probes every region's /health (and extra health URLs) every interval, and turns each probe into
 * an Observation for the controller: `pass` when answered within the timeout with no critical
 * check failing; `slow` when answered later (up to the give-up time) or with critical checks that
 * only timed out — a busy region that still serves; `fail` when refused, unanswered at the
 * give-up time, or a critical check met an error. The probes of one region never overlap: the
 * next starts one interval after the previous started, or when it ends if it took longer.
 */
export class Checker {
  readonly id: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly giveUpMs: number;
  /** Each region with its API, called without a token: GET /health is public. */
  readonly #regions: (CheckedRegion & { api: ApiClient })[];
  readonly #sink: ObservationSink;
  readonly #critical: ReadonlySet<string>;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #onError: (error: unknown) => void;
  readonly #handles = new Map<string, unknown>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #running = false;

  constructor(options: CheckerOptions) {
    if (!REGION_NAME_PATTERN.test(options.id))
      throw new FailoverConfigError(`checker id '${options.id}' is not ${REGION_NAME_PATTERN}`);
    for (const r of options.regions) {
      if (!REGION_NAME_PATTERN.test(r.name))
        throw new FailoverConfigError(`region name '${r.name}' is not ${REGION_NAME_PATTERN}`);
      for (const url of [r.url, ...(r.extra ?? []).map((e) => e.url)]) {
        const parsed = URL.canParse(url) ? new URL(url) : undefined;
        if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:'))
          throw new FailoverConfigError(`region '${r.name}': '${url}' is not an http(s) URL`);
      }
    }
    this.id = options.id;
    this.intervalMs = checkPositiveInt(
      'intervalMs',
      options.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS,
      MIN_CHECK_INTERVAL_MS,
    );
    this.timeoutMs = checkPositiveInt('timeoutMs', options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS);
    this.giveUpMs = checkPositiveInt(
      'giveUpMs',
      options.giveUpMs ?? DEFAULT_GIVE_UP_TIMEOUTS * this.timeoutMs,
      this.timeoutMs,
    );
    this.#regions = options.regions.map((r) => {
      const url = r.url.replace(/\/+$/, '');
      return { ...r, url, api: new ApiClient(r.name, url, undefined, r.agent) };
    });
    this.#sink = options.sink;
    this.#critical = new Set(options.critical ?? DEFAULT_CHECKER_CRITICAL);
    this.#clock = options.clock ?? systemClock;
    this.#timers = options.timers ?? systemTimers;
    this.#onError = options.onError ?? (() => {});
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const region of this.#regions) this.#loop(region);
  }

  /** Stops probing and waits for the probes in flight (their observations are still reported). */
  async stop(): Promise<void> {
    this.#running = false;
    for (const handle of this.#handles.values()) this.#timers.clearTimeout(handle);
    this.#handles.clear();
    await Promise.allSettled([...this.#inFlight]);
  }

  #loop(region: CheckedRegion): void {
    if (!this.#running) return;
    const started = this.#clock.now();
    const run = this.probeAndReport(region.name).finally(() => {
      this.#inFlight.delete(run);
      if (!this.#running) return;
      const wait = Math.max(0, started + this.intervalMs - this.#clock.now());
      this.#handles.set(
        region.name,
        this.#timers.setTimeout(() => this.#loop(region), wait),
      );
    });
    this.#inFlight.add(run);
  }

  /** One probe of a region, reported to the sink. */
  async probeAndReport(regionName: string): Promise<Observation> {
    const observation = await this.probe(regionName);
    try {
      await this.#sink.report([observation]);
    } catch (error) {
      this.#onError(error);
    }
    return observation;
  }

  /** One probe of a region: /health and its extra URLs, concurrently, each until the give-up time. */
  async probe(regionName: string): Promise<Observation> {
    const region = this.#regions.find((r) => r.name === regionName);
    if (!region) throw new FailoverConfigError(`checker '${this.id}' does not check region '${regionName}'`);
    const at = this.#clock.now();
    const [main, ...extras] = await Promise.all([
      this.#probeHealth(region),
      ...(region.extra ?? []).map((extra) => this.#probeExtra(extra)),
    ]);
    const failing: FailingCheck[] = [...(main?.failing ?? []), ...extras.flatMap((e) => e.failing)];
    const errors = [main?.error, ...extras.map((e) => e.error)].filter((e): e is string => e !== undefined);
    return {
      checker: this.id,
      region: region.name,
      at,
      outcome: worstOutcome([main?.outcome ?? 'fail', ...extras.map((e) => e.outcome)]),
      failingComponents: componentsOf(failing),
      failing,
      latencyMs: Math.max(0, this.#clock.now() - at),
      ...(errors.length > 0 ? { error: errors.join('; ') } : {}),
    };
  }

  /** An answer that came after the timeout is at best slow. */
  #late(outcome: ProbeOutcome, latencyMs: number): ProbeOutcome {
    return outcome === 'pass' && latencyMs > this.timeoutMs ? 'slow' : outcome;
  }

  /** GET /health by the health route's contract, until the give-up time; never throws. */
  async #probeHealth(region: CheckedRegion & { api: ApiClient }): Promise<Assessment> {
    const url = `${region.url}${HEALTH_ROUTES.health.url}`;
    const controller = new AbortController();
    const started = this.#clock.now();
    const timer = this.#timers.setTimeout(() => controller.abort(), this.giveUpMs);
    try {
      const answer = await region.api.requestAny(HEALTH_ROUTES.health, {
        signal: controller.signal,
        timeoutMs: this.giveUpMs,
      });
      const assessed = assessHealth(answer, this.#critical);
      return { ...assessed, outcome: this.#late(assessed.outcome, Math.max(0, this.#clock.now() - started)) };
    } catch (error) {
      return { outcome: 'fail', failing: [], error: this.#healthFailure(url, error, controller.signal) };
    } finally {
      this.#timers.clearTimeout(timer);
    }
  }

  /** Why GET /health gave no health report, as observations say it. */
  #healthFailure(url: string, error: unknown, giveUp: AbortSignal): string {
    const failure = error instanceof CallError ? error.failure : undefined;
    if (giveUp.aborted || failure?.type === 'timeout') return `${url}: no answer within ${this.giveUpMs} ms`;
    if (failure === undefined) return `${url}: ${error instanceof Error ? error.message : String(error)}`;
    if (failure.type === 'unreachable') return `${url}: ${failure.cause}`;
    // A 200 or 503 that is not a health report; any other status is not an answer /health gives.
    if (failure.type === 'unexpected' && (failure.status === 200 || failure.status === 503))
      return 'GET /health answered a body that is not application/health+json';
    return `GET /health answered ${failure.status}`;
  }

  async #probeExtra(
    extra: ExtraHealthUrl,
  ): Promise<{ outcome: ProbeOutcome; failing: FailingCheck[]; error?: string }> {
    const critical = extra.critical ?? this.#critical.has(extra.component);
    const result = await this.#get(extra.url);
    const expected = extra.expectedStatus ?? 200;
    const output =
      'error' in result
        ? result.error
        : result.status === expected
          ? undefined
          : `answered ${result.status}, expected ${expected}`;
    if (output === undefined) {
      const outcome = critical && !('error' in result) ? this.#late('pass', result.latencyMs) : 'pass';
      return { outcome, failing: [] };
    }
    return {
      outcome: critical ? 'fail' : 'pass',
      failing: [{ component: extra.component, check: extra.name, critical, output }],
    };
  }

  /**
   * GET an extra health URL until the give-up time, body included, with how long the answer took;
   * never throws. These are the operator's own services, not iotdr routes: no contract describes
   * them, only the status is judged.
   */
  async #get(url: string): Promise<{ status: number; text: string; latencyMs: number } | { error: string }> {
    const controller = new AbortController();
    const started = this.#clock.now();
    const timer = this.#timers.setTimeout(() => controller.abort(), this.giveUpMs);
    try {
      const res = await fetch(url, {
        signal: controller.signal,
        redirect: 'manual',
        headers: { accept: 'application/health+json, application/json' },
      });
      const text = await res.text();
      return { status: res.status, text, latencyMs: Math.max(0, this.#clock.now() - started) };
    } catch (error) {
      if (controller.signal.aborted) return { error: `${url}: no answer within ${this.giveUpMs} ms` };
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return { error: `${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}` };
    } finally {
      this.#timers.clearTimeout(timer);
    }
  }
}

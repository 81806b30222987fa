/**
 * Supervision of the platform's child processes: one that dies without being asked to is
 * restarted after a delay that doubles with each crash in a row, up to a ceiling, and falls back to
 * the first delay once the process has stayed up for a while. It knows processes by name only; the
 * platform tells it what happened and gives it a way to start a process again, so its timing runs
 * under a test's clock and timers.
 */
import { backoffMs, type Clock, systemClock, systemTimers, type Timers } from '../common/index.js';
import type { SupervisionConfig } from '../config/index.js';

/** What happened to a supervised process. */
export type ProcessEvent =
  | {
      type: 'exited';
      name: string;
      code: number | null;
      signal: NodeJS.Signals | null;
      /** When it will be started again, in ms from now; null: never (`supervision.restart: never`). */
      restartInMs: number | null;
    }
  | { type: 'restarted'; name: string }
  | {
      /** A restart that exited again or did not answer in time: another crash, with a longer delay. */
      type: 'restart-failed';
      name: string;
      error: Error;
      restartInMs: number;
    };

export interface SupervisorOptions {
  policy: SupervisionConfig;
  /** Starts the process again; resolves once it answers, rejects when it exits first or never answers. */
  start(name: string): Promise<void>;
  onEvent(event: ProcessEvent): void;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: the system timers. */
  timers?: Timers;
}

interface Watched {
  /** Crashes in a row: the doubling's exponent. */
  crashes: number;
  /** When it last answered after a start; undefined while it is down. */
  startedAt: number | undefined;
  timer: unknown;
  /** Bumped whenever the process is taken out of the supervisor's hands, so a late outcome is ignored. */
  epoch: number;
}

export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #watched = new Map<string, Watched>();
  #stopped = false;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#timers = options.timers ?? systemTimers;
  }

  /** The process answers after a start the supervisor did not make (the first one, or a restart on purpose). */
  running(name: string): void {
    const w = this.#take(name);
    w.startedAt = this.#clock.now();
  }

  /** The process exited without being asked to. */
  exited(name: string, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#stopped) return;
    const w = this.#take(name);
    const { policy } = this.#options;
    // A crash after a long healthy run is a new incident, not the next in a crash loop.
    if (w.startedAt !== undefined && this.#clock.now() - w.startedAt >= policy.stableMs) w.crashes = 0;
    w.startedAt = undefined;
    if (policy.restart === 'never') {
      this.#options.onEvent({ type: 'exited', name, code, signal, restartInMs: null });
      return;
    }
    const restartInMs = this.#schedule(name, w);
    this.#options.onEvent({ type: 'exited', name, code, signal, restartInMs });
  }

  /** The process is stopped or killed on purpose: a pending restart is cancelled, and it stays down. */
  release(name: string): void {
    const w = this.#take(name);
    w.startedAt = undefined;
  }

  /** Nothing is restarted from now on; pending restarts are cancelled. */
  stop(): void {
    this.#stopped = true;
    for (const name of this.#watched.keys()) this.#take(name);
  }

  /** Cancels what the supervisor had under way for `name`, and returns its record. */
  #take(name: string): Watched {
    let w = this.#watched.get(name);
    if (!w) {
      w = { crashes: 0, startedAt: undefined, timer: undefined, epoch: 0 };
      this.#watched.set(name, w);
    }
    if (w.timer !== undefined) this.#timers.clearTimeout(w.timer);
    w.timer = undefined;
    w.epoch++;
    return w;
  }

  /** Counts a crash and sets the restart; returns its delay. */
  #schedule(name: string, w: Watched): number {
    const { restartDelayMs, restartMaxDelayMs } = this.#options.policy;
    w.crashes++;
    // No jitter: the first delay is chosen to outlast failover detection, and must not come early.
    const delayMs = backoffMs(w.crashes, restartDelayMs, restartMaxDelayMs, () => 1);
    const epoch = w.epoch;
    w.timer = this.#timers.setTimeout(() => {
      w.timer = undefined;
      if (!this.#stopped && w.epoch === epoch) this.#restart(name, w, epoch);
    }, delayMs);
    return delayMs;
  }

  #restart(name: string, w: Watched, epoch: number): void {
    this.#options.start(name).then(
      () => {
        if (this.#stopped || w.epoch !== epoch) return;
        w.startedAt = this.#clock.now();
        this.#options.onEvent({ type: 'restarted', name });
      },
      (error: unknown) => {
        if (this.#stopped || w.epoch !== epoch) return;
        const restartInMs = this.#schedule(name, w);
        this.#options.onEvent({
          type: 'restart-failed',
          name,
          error: error instanceof Error ? error : new Error(String(error)),
          restartInMs,
        });
      },
    );
  }
}

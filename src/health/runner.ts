import { z } from 'zod';
import type { Clock } from '../common/index.js';
import type { Checkpoint, ProbeResult, Timers } from './types.js';

/** How a run of a checkpoint ended; `pending`: a background checkpoint that has no result yet. */
export type RunEnd = 'completed' | 'timed-out' | 'skipped' | 'pending';

export interface Outcome {
  result: ProbeResult;
  /** When the result was observed (ms since the epoch). */
  time: number;
  durationMs: number;
  end: RunEnd;
}

/** Longest output kept, in characters: an error message, not a stack or a body. */
const MAX_OUTPUT = 500;

const resultSchema = z.object({
  status: z.enum(['pass', 'warn', 'fail']),
  observedValue: z.union([z.number(), z.string(), z.boolean(), z.null()]),
  observedUnit: z.string().max(32).optional(),
  output: z.string().optional(),
});

interface Run {
  startedAt: number;
  outcome: Promise<Outcome>;
  timedOut: boolean;
}

/**
 * Runs one checkpoint under its timeout. A run in progress is shared by whoever asks while it is
 * within its time, so concurrent requests cost one probe; a run past its time is reported failing
 * and is not started again until it really ends, so a hanging dependency cannot pile up probes.
 * A run's outcome is then answered as is to whoever asks within `cacheMs` of the run's start, so
 * requests, however many, cost at most one probe per `cacheMs` (0: the next request probes again).
 * The window counts from the start, not the end: a caller asking twice, `cacheMs` or more apart,
 * is answered by two runs, the second started after its first question.
 *
 * A background checkpoint (`everyMs`) is the exception: a request answers its latest result and,
 * when that result failed or is older than `everyMs`, starts a new run it does not wait for.
 */
export class CheckpointRunner {
  readonly checkpoint: Checkpoint;
  readonly timeoutMs: number;
  readonly #cacheMs: number;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #onOutcome: (outcome: Outcome) => void;
  #run: Run | undefined;
  /** A background checkpoint's latest outcome. */
  #last: Outcome | undefined;
  /** The latest run's outcome and when that run started, answered within `cacheMs` of it. */
  #recent: { startedAt: number; outcome: Outcome } | undefined;

  constructor(options: {
    checkpoint: Checkpoint;
    timeoutMs: number;
    /** In ms; 0 keeps nothing. */
    cacheMs: number;
    clock: Clock;
    timers: Timers;
    onOutcome: (outcome: Outcome) => void;
  }) {
    this.checkpoint = options.checkpoint;
    this.timeoutMs = options.timeoutMs;
    this.#cacheMs = options.cacheMs;
    this.#clock = options.clock;
    this.#timers = options.timers;
    this.#onOutcome = options.onOutcome;
  }

  run(): Promise<Outcome> {
    if (this.checkpoint.everyMs !== undefined)
      return Promise.resolve(this.#background(this.checkpoint.everyMs));
    const recent = this.#recent;
    if (recent) {
      // A clock set back makes the age negative: probe again rather than keep the answer.
      const age = this.#clock.now() - recent.startedAt;
      if (age >= 0 && age < this.#cacheMs) return Promise.resolve(recent.outcome);
    }
    const current = this.#run;
    if (current && !current.timedOut) return current.outcome;
    if (current) return Promise.resolve(this.#skip(current));
    return this.#start();
  }

  #background(everyMs: number): Outcome {
    const now = this.#clock.now();
    const last = this.#last;
    const due = last === undefined || last.result.status !== 'pass' || now - last.time >= everyMs;
    if (due && this.#run === undefined) {
      void this.#start().then((outcome) => {
        this.#last = outcome;
      });
    }
    // Its `time` says when it was observed.
    if (last) return last;
    return {
      result: { status: 'warn', observedValue: null, output: 'its first run is in progress' },
      time: now,
      durationMs: 0,
      end: 'pending',
    };
  }

  #skip(hung: Run): Outcome {
    const now = this.#clock.now();
    const age = Math.max(0, now - hung.startedAt);
    const outcome: Outcome = {
      result: {
        status: 'fail',
        observedValue: age,
        observedUnit: 'ms',
        output: `timed out after ${this.timeoutMs} ms; that run is still hanging (${age} ms), so no new one was started`,
      },
      time: now,
      durationMs: 0,
      end: 'skipped',
    };
    this.#onOutcome(outcome);
    return outcome;
  }

  #start(): Promise<Outcome> {
    const startedAt = this.#clock.now();
    const controller = new AbortController();
    let step: string | undefined;
    let settled = false;
    let resolve: (outcome: Outcome) => void = () => {};
    const run: Run = {
      startedAt,
      outcome: new Promise<Outcome>((r) => {
        resolve = r;
      }),
      timedOut: false,
    };
    this.#run = run;
    const finish = (result: ProbeResult, end: RunEnd): void => {
      if (settled) return;
      settled = true;
      const time = this.#clock.now();
      const outcome: Outcome = { result, time, durationMs: Math.max(0, time - startedAt), end };
      this.#recent = { startedAt, outcome };
      this.#onOutcome(outcome);
      resolve(outcome);
    };
    const timer = this.#timers.setTimeout(() => {
      run.timedOut = true;
      finish(
        {
          status: 'fail',
          observedValue: Math.max(0, this.#clock.now() - startedAt),
          observedUnit: 'ms',
          output: `timed out after ${this.timeoutMs} ms${step === undefined ? '' : ` (${step})`}`,
        },
        'timed-out',
      );
      controller.abort(new Error(`timed out after ${this.timeoutMs} ms`));
    }, this.timeoutMs);

    let probing: Promise<ProbeResult>;
    try {
      probing = this.checkpoint.probe({
        signal: controller.signal,
        timeoutMs: this.timeoutMs,
        step: (label) => {
          step = label;
        },
      });
    } catch (error) {
      probing = Promise.reject(error);
    }
    Promise.resolve(probing)
      .then(
        (value) => checked(value),
        (error: unknown) => failed(error, Math.max(0, this.#clock.now() - startedAt)),
      )
      .then((result) => {
        this.#timers.clearTimeout(timer);
        // Only now may a new run start: a late result is dropped, but its end frees the slot.
        if (this.#run === run) this.#run = undefined;
        finish(result, 'completed');
      });
    return run.outcome;
  }
}

function checked(value: unknown): ProbeResult {
  const parsed = resultSchema.safeParse(value);
  if (!parsed.success) {
    return { status: 'fail', observedValue: null, output: 'the checkpoint returned an invalid result' };
  }
  const { output, observedUnit, ...rest } = parsed.data;
  return {
    ...rest,
    ...(observedUnit === undefined ? {} : { observedUnit }),
    ...(output === undefined ? {} : { output: clip(output) }),
  };
}

/** A probe that threw: fail, with how long it took to fail and the error's message. */
function failed(error: unknown, elapsedMs: number): ProbeResult {
  const message = error instanceof Error ? error.message : String(error);
  return { status: 'fail', observedValue: elapsedMs, observedUnit: 'ms', output: clip(message || 'failed') };
}

function clip(text: string): string {
  return text.length > MAX_OUTPUT ? `${text.slice(0, MAX_OUTPUT - 1)}…` : text;
}

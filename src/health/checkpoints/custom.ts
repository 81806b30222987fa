import { type Clock, systemClock } from '../../common/index.js';
import type { HealthComponent } from '../config.js';
import type { Checkpoint, CheckpointOptions, ProbeContext, ProbeResult } from '../types.js';

export interface CustomCheckpointOptions extends Omit<CheckpointOptions, 'name'> {
  /** Second half of the checks key; default 'responseTime'. */
  measurement?: string;
  /** The draft's componentType; default 'component'. */
  componentType?: string;
  clock?: Clock;
}

/**
 * A checkpoint from a function, e.g. the event bus's append and read. The function does the real
 * work and throws when it fails; it resolves to nothing (pass, observedValue = its duration in
 * ms), a number (pass, observedValue = that many ms) or a full ProbeResult. It should stop when
 * `context.signal` aborts.
 */
export function customCheckpoint(
  name: string,
  component: HealthComponent,
  fn: (context: ProbeContext) => Promise<unknown>,
  options: CustomCheckpointOptions = {},
): Checkpoint {
  const clock = options.clock ?? systemClock;
  return {
    name,
    component,
    measurement: options.measurement ?? 'responseTime',
    componentType: options.componentType ?? 'component',
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.critical === undefined ? {} : { critical: options.critical }),
    async probe(context) {
      const started = clock.now();
      const result = await fn(context);
      if (result === undefined || result === null) {
        return { status: 'pass', observedValue: Math.max(0, clock.now() - started), observedUnit: 'ms' };
      }
      if (typeof result === 'number') return { status: 'pass', observedValue: result, observedUnit: 'ms' };
      // Checked by the runner: anything that is not a ProbeResult reports fail.
      return result as ProbeResult;
    },
  };
}

import { randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '../../common/index.js';
import type { RegistryService } from '../../registry/index.js';
import type { Checkpoint, CheckpointOptions } from '../types.js';

/** The local-state key the probe writes; local state is per region and never replicated. */
export const REGISTRY_PROBE_KEY = 'health:probe';

export interface RegistryCheckpointOptions extends CheckpointOptions {
  /** Default: the service's clock. */
  clock?: Clock;
}

/**
 * `registry:writeRead`: writes a fresh nonce to the store's local state in a durable transaction
 * and reads it back; passes only when the same nonce comes back. observedValue: ms for both.
 */
export function registryCheckpoint(
  service: Pick<RegistryService, 'transaction' | 'store'> & { clock?: Clock },
  options: RegistryCheckpointOptions = {},
): Checkpoint {
  const clock = options.clock ?? service.clock ?? systemClock;
  return {
    name: options.name ?? 'registry',
    component: 'registry',
    measurement: 'writeRead',
    componentType: 'datastore',
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.critical === undefined ? {} : { critical: options.critical }),
    async probe(context) {
      const started = clock.now();
      const nonce = randomUUID();
      context.step('writing');
      await service.transaction((tx) => tx.putLocal(REGISTRY_PROBE_KEY, { nonce, at: started }, started));
      context.step('reading');
      const read = await service.store.getLocal(REGISTRY_PROBE_KEY);
      const elapsed = Math.max(0, clock.now() - started);
      if (read?.nonce !== nonce) {
        return {
          status: 'fail',
          observedValue: elapsed,
          observedUnit: 'ms',
          output: read === undefined ? 'the value written was not found' : 'read back a different value',
        };
      }
      return { status: 'pass', observedValue: elapsed, observedUnit: 'ms' };
    },
  };
}

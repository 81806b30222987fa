import { mkdtemp, rm } from 'node:fs/promises';
import type { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FailoverController,
  type FailoverControllerOptions,
  FailoverStore,
  type Observation,
  type Timers,
} from '../../src/failover/index.js';
import { siteAgentOf } from '../harness/region.js';

/** Time that moves only when the test says so. */
export class ManualClock {
  constructor(public value = 1_700_000_000_000) {}
  now(): number {
    return this.value;
  }
  advance(ms: number): void {
    this.value += ms;
  }
}

/** Timers that never fire on their own: the tests call evaluate() after moving the clock. */
export const idleTimers: Timers = { setTimeout: () => undefined, clearTimeout: () => {} };

export const REGIONS = [
  { name: 'us-east', priority: 1, url: 'http://127.0.0.1:1' },
  { name: 'us-west', priority: 2, url: 'http://127.0.0.1:2' },
];

/** One probe's observation: true passes, false fails (the broker), 'slow' answered late. */
export function observation(
  checker: string,
  region: string,
  result: boolean | 'slow',
  at: number,
  latencyMs = 5,
): Observation {
  const outcome = result === true ? 'pass' : result === false ? 'fail' : 'slow';
  return {
    checker,
    region,
    at,
    outcome,
    failingComponents: outcome === 'fail' ? ['broker'] : [],
    failing: outcome === 'fail' ? [{ component: 'broker', check: 'broker:roundTrip', critical: true }] : [],
    latencyMs,
  };
}

/** A controller on a real SQLite file in a temporary directory, with a manual clock. */
export async function tempDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-failover-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function controllerAt(
  file: string,
  clock: ManualClock,
  options: Partial<FailoverControllerOptions> = {},
): { controller: FailoverController; store: FailoverStore } {
  const store = new FailoverStore(file);
  const controller = new FailoverController({
    regions: REGIONS,
    checkers: ['control'],
    store,
    clock,
    timers: idleTimers,
    ...options,
  });
  return { controller, store };
}

/**
 * Control's site agents for the regions of a state directory's CA, by region name, each checking
 * that the region it reaches is that one: what `iotdr control` probes and switches with over mutual
 * TLS. Destroy them when done (they keep connections alive).
 */
export async function controlAgents(stateDir: string, names: readonly string[]): Promise<Map<string, Agent>> {
  const agents = new Map<string, Agent>();
  for (const name of names)
    agents.set(
      name,
      await siteAgentOf(stateDir, { kind: 'control', name: 'control' }, { kind: 'region', name }),
    );
  return agents;
}

import { z } from 'zod';
import { type Clock, systemClock } from '../../common/index.js';
import type { LinkStatus, ReplicationStatus } from '../../replication/index.js';
import { DEFAULT_MAX_LAG_CHANGES, DEFAULT_MAX_LAG_MS } from '../config.js';
import { InvalidCheckpointError } from '../errors.js';
import type { Checkpoint, CheckpointOptions, HealthStatus, ProbeResult } from '../types.js';

/**
 * A link whose peer has not answered for longer than this fails, in ms. A long poll answers
 * within replication.waitMs (default 10 s, at most 30 s), so keep this above twice that.
 */
export const DEFAULT_MAX_CONTACT_AGE_MS = 30_000;

export interface ReplicationThresholds {
  /** Default 5,000 ms. */
  maxLagMs: number;
  /** Default 10,000 changes. */
  maxLagChanges: number;
  /** Default 30,000 ms. */
  maxContactAgeMs: number;
}

export interface ReplicationCheckpointOptions extends CheckpointOptions, Partial<ReplicationThresholds> {
  clock?: Clock;
}

const thresholdsSchema = z.object({
  maxLagMs: z.number().int().min(1).default(DEFAULT_MAX_LAG_MS),
  maxLagChanges: z.number().int().min(1).default(DEFAULT_MAX_LAG_CHANGES),
  maxContactAgeMs: z.number().int().min(1).default(DEFAULT_MAX_CONTACT_AGE_MS),
});

/**
 * `replication:lag`: every link of this region's replication. Fails when a link is not pulling
 * (retrying or stopped), is past a lag threshold or has not heard from its peer for too long;
 * warns for a link that has not answered yet and for dead letters. A region without peers passes.
 * observedValue: the worst link's lag in ms.
 */
export function replicationCheckpoint(
  replication: { status(): Promise<ReplicationStatus> },
  options: ReplicationCheckpointOptions = {},
): Checkpoint {
  const parsed = thresholdsSchema.safeParse({
    maxLagMs: options.maxLagMs,
    maxLagChanges: options.maxLagChanges,
    maxContactAgeMs: options.maxContactAgeMs,
  });
  if (!parsed.success)
    throw new InvalidCheckpointError('replication checkpoint options', parsed.error.issues);
  const thresholds = parsed.data;
  const clock = options.clock ?? systemClock;
  return {
    name: options.name ?? 'replication',
    component: 'replication',
    measurement: 'lag',
    componentType: 'component',
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.critical === undefined ? {} : { critical: options.critical }),
    async probe() {
      const { links } = await replication.status();
      return assessLinks(links, clock.now(), thresholds);
    },
  };
}

/** The verdict on a region's links at `now` (ms). */
export function assessLinks(
  links: readonly LinkStatus[],
  now: number,
  thresholds: ReplicationThresholds,
): ProbeResult {
  let worstLag = 0;
  const statuses: HealthStatus[] = [];
  const problems: string[] = [];
  const note = (status: HealthStatus, text: string) => {
    statuses.push(status);
    problems.push(text);
  };
  for (const link of links) {
    // A link with nothing left to apply is not behind, whatever the last change's lag was.
    const lag = (link.lagChanges ?? 0) > 0 ? (link.lagMs ?? 0) : 0;
    worstLag = Math.max(worstLag, lag);
    const peer = link.peer;
    const state = link.state;
    if (state.type === 'retrying' || state.type === 'stopped') {
      const why = link.lastError ? `: ${link.lastError.message}` : '';
      note(
        'fail',
        state.type === 'retrying'
          ? `link from ${peer} retrying (attempt ${state.attempt})${why}`
          : `link from ${peer} stopped`,
      );
      continue;
    }
    if (state.type === 'starting') {
      note('warn', `link from ${peer} has not had an answer yet`);
      continue;
    }
    if (lag > thresholds.maxLagMs)
      note('fail', `link from ${peer} is ${lag} ms behind (over ${thresholds.maxLagMs})`);
    const changes = link.lagChanges ?? 0;
    if (changes > thresholds.maxLagChanges) {
      note('fail', `link from ${peer} has ${changes} changes to apply (over ${thresholds.maxLagChanges})`);
    }
    if (link.lastContactAt !== null && now - link.lastContactAt > thresholds.maxContactAgeMs) {
      note(
        'fail',
        `no answer from ${peer} for ${now - link.lastContactAt} ms (over ${thresholds.maxContactAgeMs})`,
      );
    }
    if (link.deadLetters > 0) note('warn', `${link.deadLetters} dead letters from ${peer}`);
  }
  const status = statuses.includes('fail') ? 'fail' : statuses.includes('warn') ? 'warn' : 'pass';
  return {
    status,
    observedValue: worstLag,
    observedUnit: 'ms',
    ...(problems.length === 0 ? {} : { output: problems.join('; ') }),
  };
}

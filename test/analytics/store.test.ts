/** The SQLite analytics store: the shared store suite, sequence ranges, its retention timer. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addSeq,
  gapsOf,
  missingOf,
  type SeqRanges,
  SqliteAnalyticsStore,
} from '../../src/analytics/index.js';
import { analyticsStoreSuite, event, T0 } from './store-suite.js';

describe('sequence ranges', () => {
  it('merges neighbours, fills holes and counts what is missing', () => {
    const r: SeqRanges = [];
    for (const s of [1, 2, 5, 9, 4]) expect(addSeq(r, s)).toBe(true);
    expect(r).toEqual([
      [1, 2],
      [4, 5],
      [9, 9],
    ]);
    expect(missingOf(r)).toBe(4);
    expect(gapsOf(r)).toEqual([
      { from: 3, to: 3 },
      { from: 6, to: 8 },
    ]);
    expect(addSeq(r, 4)).toBe(false);
    for (const s of [3, 6, 7, 8]) addSeq(r, s);
    expect(r).toEqual([[1, 9]]);
    expect(missingOf(r)).toBe(0);
    expect(addSeq(r, 0)).toBe(true);
    expect(r).toEqual([[0, 9]]);
  });

  it('lists at most 100 gaps but counts all of them', () => {
    const r: SeqRanges = [];
    for (let s = 0; s <= 400; s += 2) addSeq(r, s);
    expect(missingOf(r)).toBe(200);
    expect(gapsOf(r)).toHaveLength(100);
  });
});

analyticsStoreSuite('SqliteAnalyticsStore', ({ dir, clock, retentionSeconds }) =>
  SqliteAnalyticsStore.open({
    path: join(dir, 'analytics', 'analytics.db'),
    clock,
    retentionIntervalMs: 0,
    ...(retentionSeconds === undefined ? {} : { retentionSeconds }),
  }),
);

describe('SqliteAnalyticsStore retention timer', () => {
  let dir: string | undefined;
  let store: SqliteAnalyticsStore | undefined;
  afterEach(async () => {
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs retention on its interval, and not at all with retention 0', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-analytics-timer-'));
    let now = T0;
    let tick: (() => void) | undefined;
    let intervalMs = 0;
    const every = (ms: number, fn: () => void) => {
      intervalMs = ms;
      tick = fn;
      return () => {
        tick = undefined;
      };
    };
    store = await SqliteAnalyticsStore.open({
      path: join(dir, 'a.db'),
      retentionSeconds: 60,
      clock: { now: () => now },
      every,
    });
    expect(intervalMs).toBe(60_000);
    await store.ingest('us-east', [event({ time: T0 })], 2);
    now = T0 + 120_000;
    tick?.();
    expect(await store.rates({ from: T0, to: T0 + 1000 })).toEqual([]);
    await store.close();
    expect(tick).toBeUndefined();
    store = await SqliteAnalyticsStore.open({ path: join(dir, 'b.db'), retentionSeconds: 0, every });
    expect(tick).toBeUndefined();
  });
});

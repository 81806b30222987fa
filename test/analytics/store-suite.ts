/**
 * The behaviour every AnalyticsStore implementation must show: de-duplication across regions,
 * sequence ranges and gaps, offsets and counts that survive a reopen, retention, the timeline.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnalyticsStore } from '../../src/analytics/index.js';
import type { Clock } from '../../src/common/index.js';
import type { BusEvent } from '../../src/events/index.js';

/** Opens the store kept in `dir` (the same dir again = a reopen after a restart). */
export type OpenStore = (options: {
  dir: string;
  clock: Clock;
  retentionSeconds?: number;
}) => Promise<AnalyticsStore>;

export const T0 = 1_800_000_000_000;
let offset = 0;

export function event(over: Partial<BusEvent> & { seq?: number } = {}): BusEvent {
  const { seq, ...rest } = over;
  offset++;
  return {
    id: `m-${offset}`,
    offset,
    region: 'us-east',
    time: T0,
    source: { type: 'rule', rule: 'telemetry' },
    topic: 'devices/d1/telemetry',
    thingName: 'd1',
    clientId: 'd1',
    payload: { type: 'json', value: seq === undefined ? { t: 1 } : { seq, t: 1 } },
    ...rest,
  };
}

export function analyticsStoreSuite(name: string, open: OpenStore): void {
  describe(name, () => {
    let dir: string;
    let now = T0;
    const stores: AnalyticsStore[] = [];

    async function openStore(options: { retentionSeconds?: number } = {}): Promise<AnalyticsStore> {
      const store = await open({ dir, clock: { now: () => now }, ...options });
      stores.push(store);
      return store;
    }

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'iotdr-analytics-store-'));
      now = T0;
    });
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('counts a message read from two regions once, and the duplicate against the region that read it second', async () => {
      const store = await openStore();
      const e = event({ seq: 1 });
      expect(await store.ingest('us-east', [e], e.offset + 1)).toEqual({
        read: 1,
        accepted: 1,
        duplicates: 0,
      });
      expect(
        await store.ingest('us-west', [{ ...e, region: 'us-west', offset: 1, time: T0 + 1500 }], 2),
      ).toEqual({
        read: 1,
        accepted: 0,
        duplicates: 1,
      });
      expect(await store.totals()).toEqual({
        messages: 1,
        duplicates: 1,
        devices: 1,
        devicesWithGaps: 0,
        missing: 0,
      });
      expect(await store.rates({ from: T0 - 5000, to: T0 + 5000 })).toEqual([
        { region: 'us-east', second: T0, messages: 1 },
      ]);
      expect(await store.cursor('us-west')).toEqual({
        region: 'us-west',
        nextOffset: 2,
        read: 1,
        duplicates: 1,
      });
      expect((await store.device('d1'))?.lastRegion).toBe('us-east');
    });

    it('reports a hole in a device sequence and fills it when the message arrives late from the other region', async () => {
      const store = await openStore();
      const batch = [1, 2, 4, 5].map((seq, i) => event({ seq, time: T0 + i * 100 }));
      await store.ingest('us-east', batch, 5);
      const d = await store.device('d1');
      expect(d).toMatchObject({
        firstSeq: 1,
        lastSeq: 5,
        missing: 1,
        gaps: [{ from: 3, to: 3 }],
        messages: 4,
      });
      expect(await store.devices({ limit: 10, withGaps: true })).toHaveLength(1);
      expect(await store.totals()).toMatchObject({ devicesWithGaps: 1, missing: 1 });
      // seq 3 re-sent through us-west after a failover, received later than the others.
      await store.ingest('us-west', [event({ seq: 3, time: T0 - 50, region: 'us-west' })], 2);
      expect(await store.device('d1')).toMatchObject({
        missing: 0,
        gaps: [],
        messages: 5,
        lastRegion: 'us-east',
      });
      expect(await store.devices({ limit: 10, withGaps: true })).toEqual([]);
    });

    it('counts events without a thing in rates only, skips the bus health probes, and ignores bad sequence numbers', async () => {
      const store = await openStore();
      await store.ingest(
        'us-east',
        [
          event({ thingName: undefined as unknown as string }),
          event({ source: { type: 'health' } }),
          event({ payload: { type: 'json', value: { seq: -1 } } }),
          event({ payload: { type: 'json', value: { seq: 1.5 } } }),
          event({ payload: { type: 'base64', data: 'AAE=' } }),
        ],
        6,
      );
      const totals = await store.totals();
      expect(totals.messages).toBe(4);
      expect(totals.devices).toBe(1);
      const d = await store.device('d1');
      expect(d).toMatchObject({ messages: 3, firstSeq: null, lastSeq: null, missing: 0 });
      expect(await store.cursor('us-east')).toMatchObject({ nextOffset: 6, read: 4 });
    });

    it('keeps offsets and counts across a reopen', async () => {
      let store = await openStore();
      await store.ingest('us-east', [event({ seq: 1 }), event({ seq: 2 })], 3);
      await store.close();
      store = await openStore();
      expect(await store.cursor('us-east')).toMatchObject({ nextOffset: 3, read: 2 });
      expect(await store.totals()).toMatchObject({ messages: 2 });
      expect(await store.device('d1')).toMatchObject({ firstSeq: 1, lastSeq: 2 });
    });

    it('forgets rates and seen ids older than the retention period when retention runs', async () => {
      const store = await openStore({ retentionSeconds: 60 });
      const old = event({ seq: 1, time: T0 });
      await store.ingest('us-east', [old, event({ seq: 2, time: T0 + 50_000 })], 3);
      now = T0 + 61_000;
      expect(await store.enforceRetention()).toEqual({ rates: 1, seenIds: 1 });
      expect(await store.rates({ from: T0 - 1000, to: now })).toEqual([
        { region: 'us-east', second: T0 + 50_000, messages: 1 },
      ]);
      // Its id is forgotten: the same message arriving now counts as new.
      expect((await store.ingest('us-west', [{ ...old, region: 'us-west' }], 2)).accepted).toBe(1);
      // …and being as old as before, it goes at the next run.
      expect(await store.enforceRetention()).toEqual({ rates: 1, seenIds: 1 });
      expect(await store.enforceRetention()).toEqual({ rates: 0, seenIds: 0 });
    });

    it('keeps everything with retention 0', async () => {
      const store = await openStore({ retentionSeconds: 0 });
      await store.ingest('us-east', [event({ time: T0 })], 2);
      now = T0 + 10 * 365 * 86_400_000;
      expect(await store.enforceRetention()).toEqual({ rates: 0, seenIds: 0 });
      expect(await store.rates({ from: T0, to: T0 + 1000 })).toHaveLength(1);
    });

    it('mirrors timeline entries once each and filters them by type', async () => {
      const store = await openStore();
      const entries = [
        { seq: 1, type: 'holding-ended', at: T0, event: { type: 'holding-ended', seq: 1 } },
        { seq: 2, type: 'switch', at: T0 + 1, event: { type: 'switch', seq: 2, from: 'a', to: 'b' } },
      ];
      expect(await store.appendTimeline(entries)).toBe(2);
      expect(await store.appendTimeline(entries)).toBe(0);
      expect(await store.lastTimelineSeq()).toBe(2);
      expect(await store.timeline({ limit: 10, type: 'switch' })).toEqual([entries[1]]);
      expect(await store.timeline({ limit: 10, after: 1 })).toEqual([entries[1]]);
    });

    it('pages devices by name', async () => {
      const store = await openStore();
      await store.ingest(
        'us-east',
        ['c', 'a', 'b'].map((name) => event({ thingName: name })),
        4,
      );
      expect((await store.devices({ limit: 2 })).map((d) => d.thingName)).toEqual(['a', 'b']);
      expect((await store.devices({ limit: 2, after: 'b' })).map((d) => d.thingName)).toEqual(['c']);
    });

    it('refuses to work once closed', async () => {
      const store = await openStore();
      await store.close();
      await expect(store.totals()).rejects.toMatchObject({ code: 'IOTDR_ANALYTICS_CLOSED' });
    });
  });
}

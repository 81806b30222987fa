/**
 * One RegionIngestor against a real bus served over HTTP (SqliteEventBus + eventRoutes behind the
 * registry's bearer auth): lag and the lagging state, gaps left by the bus's retention, failures.
 */
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  analyticsMetrics,
  type IngestStatus,
  RegionIngestor,
  SqliteAnalyticsStore,
} from '../../src/analytics/index.js';
import { encodePayload, eventRoutes, type NewEvent, SqliteEventBus } from '../../src/events/index.js';
import { startApi, type TestApi } from '../events/support.js';
import { eventually } from '../harness/cluster.js';

function event(id: string, time: number, seq: number): NewEvent {
  return {
    id,
    time,
    source: { type: 'rule', rule: 'telemetry' },
    topic: 'devices/d1/telemetry',
    thingName: 'd1',
    payload: encodePayload(Buffer.from(JSON.stringify({ seq }))),
  };
}

describe('RegionIngestor', () => {
  let api: TestApi;
  let bus: SqliteEventBus;
  let store: SqliteAnalyticsStore;
  let ingestor: RegionIngestor | undefined;

  beforeEach(async () => {
    api = await startApi(async (service, metrics, dir) => {
      bus = await SqliteEventBus.open({
        path: join(dir, 'events.db'),
        region: 'us-east',
        metrics,
        retention: { maxAgeSeconds: 3600, intervalMs: 0 },
      });
      return [eventRoutes(bus, service)];
    });
    store = await SqliteAnalyticsStore.open({ path: join(api.dir, 'analytics', 'analytics.db') });
  });

  afterEach(async () => {
    await ingestor?.close();
    ingestor = undefined;
    await store.close();
    await api.close();
    await bus.close();
  });

  it('lags while old events are unread and is healthy once caught up', async () => {
    const old = Date.now() - 60_000;
    for (let seq = 1; seq <= 3; seq++) await bus.append(event(`m${seq}`, old + seq, seq));
    const seen: IngestStatus[] = [];
    ingestor = new RegionIngestor({
      region: 'us-east',
      url: api.url,
      token: api.tokens.reader,
      store,
      maxLagMs: 5000,
      batchSize: 1,
      waitMs: 200,
      metrics: { batch: () => seen.push(ingestor?.status() as IngestStatus), gap: () => {} },
    });
    expect(ingestor.status()).toMatchObject({ state: { type: 'starting' }, healthy: false, lagMs: null });
    await ingestor.start();
    await eventually(async () => ingestor?.status().state.type === 'ingesting', 'caught up');
    // One event per read: after the first, two 60 s old events were still unread.
    expect(seen[0]).toMatchObject({ state: { type: 'lagging' }, lagEvents: 2, healthy: false });
    expect((seen[0]?.state as { lagMs?: number } | undefined)?.lagMs).toBeGreaterThan(55_000);
    expect(ingestor.status()).toMatchObject({
      nextOffset: 4,
      lastOffset: 3,
      lagEvents: 0,
      lagMs: 0,
      read: 3,
      healthy: true,
    });
    // New events are read as they are appended (long poll).
    await bus.append(event('m4', Date.now(), 4));
    await eventually(async () => ingestor?.status().nextOffset === 5, 'the new event');
    expect(await store.device('d1')).toMatchObject({ messages: 4, firstSeq: 1, lastSeq: 4 });
  });

  it('counts events lost to the bus retention as a gap and carries on from the oldest kept', async () => {
    for (let seq = 1; seq <= 3; seq++) await bus.append(event(`m${seq}`, Date.now() - 7_200_000, seq));
    for (let seq = 4; seq <= 5; seq++) await bus.append(event(`m${seq}`, Date.now(), seq));
    // Analytics had read offset 1 before: it wants 2 next, but retention removes 1..3.
    await store.ingest('us-east', [], 2);
    await bus.enforceRetention();
    const registry = new Registry();
    const metrics = analyticsMetrics(registry, () => (ingestor ? [ingestor.status()] : []));
    ingestor = new RegionIngestor({
      region: 'us-east',
      url: api.url,
      token: api.tokens.reader,
      store,
      waitMs: 200,
      metrics,
    });
    await ingestor.start();
    await eventually(async () => ingestor?.status().nextOffset === 6, 'read past the gap');
    expect(ingestor.status().healthy).toBe(true);
    const text = await registry.metrics();
    expect(text).toContain('iotdr_analytics_bus_gaps_total{region="us-east"} 1');
    expect(text).toContain('iotdr_analytics_bus_lost_events_total{region="us-east"} 2');
    expect(text).toContain('iotdr_analytics_ingested_total{region="us-east"} 2');
    expect(await store.device('d1')).toMatchObject({ firstSeq: 4, lastSeq: 5, missing: 0 });
  });

  it('is unreachable while the bus refuses it, with the reason, and retries with backoff', async () => {
    const delays: number[] = [];
    ingestor = new RegionIngestor({
      region: 'us-east',
      url: api.url,
      token: 'not-a-token',
      store,
      waitMs: 200,
      retryBaseMs: 200,
      retryMaxMs: 1000,
      random: () => 1,
      sleep: async (ms) => {
        delays.push(ms);
        await new Promise((r) => setTimeout(r, 5));
      },
    });
    await ingestor.start();
    await eventually(async () => delays.length >= 5, 'five retries');
    const state = ingestor.status().state;
    expect(state).toMatchObject({ type: 'unreachable' });
    expect((state as { error: string }).error).toContain('IOTDR_AUTH_INVALID_TOKEN');
    // 200 ms doubling, capped at 1 s (random() = 1 takes the top of the jitter range).
    expect(delays.slice(0, 5)).toEqual([200, 400, 800, 1000, 1000]);
    // A stop wins over the failure, and resume starts reading again.
    expect(ingestor.stop('drill').state).toMatchObject({ type: 'stopped', reason: 'drill' });
    expect(ingestor.resume().state.type).not.toBe('stopped');
  });
});

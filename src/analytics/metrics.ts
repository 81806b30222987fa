import { Counter, Gauge, type Registry } from 'prom-client';
import type { IngestResult } from './store.js';
import type { IngestStatus } from './types.js';

/** What ingestors report as they go; the Prometheus side of it. */
export interface IngestMetrics {
  batch(region: string, result: IngestResult): void;
  /** The bus lost `lost` events to retention before analytics read them. */
  gap(region: string, lost: number): void;
}

/**
 * `iotdr_analytics_*` metrics: counters of what was ingested, and gauges of every region's lag
 * and health read from `statuses` at scrape time (so they never go stale between batches).
 */
export function analyticsMetrics(registry: Registry, statuses: () => IngestStatus[]): IngestMetrics {
  const ingested = new Counter({
    name: 'iotdr_analytics_ingested_total',
    help: 'New messages (ids not seen before) ingested per region',
    labelNames: ['region'],
    registers: [registry],
  });
  const duplicates = new Counter({
    name: 'iotdr_analytics_duplicates_total',
    help: 'Messages read whose id was already seen (from any region)',
    labelNames: ['region'],
    registers: [registry],
  });
  const gaps = new Counter({
    name: 'iotdr_analytics_bus_gaps_total',
    help: 'Times a region bus answered that events were lost to its retention before analytics read them',
    labelNames: ['region'],
    registers: [registry],
  });
  const lost = new Counter({
    name: 'iotdr_analytics_bus_lost_events_total',
    help: 'Events lost to a region bus retention before analytics read them',
    labelNames: ['region'],
    registers: [registry],
  });
  new Gauge({
    name: 'iotdr_analytics_lag_events',
    help: 'Events appended to a region bus and not read yet (-1 before the first read)',
    labelNames: ['region'],
    registers: [registry],
    collect() {
      for (const s of statuses()) this.set({ region: s.region }, s.lagEvents ?? -1);
    },
  });
  new Gauge({
    name: 'iotdr_analytics_lag_ms',
    help: 'Age of the oldest unread event of a region bus in ms (-1 before the first read)',
    labelNames: ['region'],
    registers: [registry],
    collect() {
      for (const s of statuses()) this.set({ region: s.region }, s.lagMs ?? -1);
    },
  });
  new Gauge({
    name: 'iotdr_analytics_region_healthy',
    help: 'Whether a region is ingested within the lag threshold (1) or not (0)',
    labelNames: ['region'],
    registers: [registry],
    collect() {
      for (const s of statuses()) this.set({ region: s.region }, s.healthy ? 1 : 0);
    },
  });
  return {
    batch(region, result) {
      ingested.inc({ region }, result.accepted);
      duplicates.inc({ region }, result.duplicates);
    },
    gap(region, n) {
      gaps.inc({ region });
      lost.inc({ region }, n);
    },
  };
}

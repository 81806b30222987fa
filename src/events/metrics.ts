import { Counter, Gauge, type Registry } from 'prom-client';

export interface BusMetrics {
  appends: Counter;
  bytes: Gauge;
  count: Gauge;
  lastOffset: Gauge;
}

/** The bus's metrics in the region's registry (the registry's default labels add the region). */
export function busMetrics(registry: Registry): BusMetrics {
  return {
    appends: new Counter({
      name: 'iotdr_events_appended_total',
      help: 'Events appended to the region event bus (re-deliveries of a known id not counted)',
      registers: [registry],
    }),
    bytes: new Gauge({
      name: 'iotdr_events_stored_bytes',
      help: 'Approximate stored size of the events the bus keeps',
      registers: [registry],
    }),
    count: new Gauge({
      name: 'iotdr_events_stored',
      help: 'Events the bus keeps',
      registers: [registry],
    }),
    lastOffset: new Gauge({
      name: 'iotdr_events_last_offset',
      help: 'Newest offset of the region event bus',
      registers: [registry],
    }),
  };
}

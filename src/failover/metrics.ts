import { Counter, Gauge, type Registry } from 'prom-client';
import type { FailoverController } from './controller.js';

/**
 * The controller's figures for Prometheus: gauges are read from the controller's state at scrape
 * time, counters follow its committed events.
 */
export function registerFailoverMetrics(registry: Registry, controller: FailoverController): () => void {
  new Gauge({
    name: 'iotdr_failover_active_region',
    help: '1 for the active region, 0 for the others',
    labelNames: ['region'] as const,
    registers: [registry],
    collect() {
      const active = controller.decision().activeRegion;
      for (const r of controller.regions) this.set({ region: r.name }, r.name === active ? 1 : 0);
    },
  });
  new Gauge({
    name: 'iotdr_failover_epoch',
    help: 'Fencing epoch: incremented by every switch',
    registers: [registry],
    collect() {
      this.set(controller.decision().epoch);
    },
  });
  new Gauge({
    name: 'iotdr_failover_region_healthy',
    help: 'Region health as decided by a quorum of checkers: 1 up, 0 down, -1 unknown',
    labelNames: ['region'] as const,
    registers: [registry],
    collect() {
      for (const r of controller.state().regions)
        this.set({ region: r.region }, r.status === 'up' ? 1 : r.status === 'down' ? 0 : -1);
    },
  });
  new Gauge({
    name: 'iotdr_failover_no_healthy_region',
    help: '1 while no region is healthy and the active region is kept as it is',
    registers: [registry],
    collect() {
      this.set(controller.state().noHealthyRegion ? 1 : 0);
    },
  });
  new Gauge({
    name: 'iotdr_failover_holding',
    help: '1 while a (re)started controller holds its decision until it has fresh quorum verdicts',
    registers: [registry],
    collect() {
      this.set(controller.mode().type === 'holding' ? 1 : 0);
    },
  });
  const switches = new Counter({
    name: 'iotdr_failover_switches_total',
    help: 'Switches of the active region, by trigger',
    labelNames: ['trigger', 'to'] as const,
    registers: [registry],
  });
  const healthChanges = new Counter({
    name: 'iotdr_failover_region_health_changes_total',
    help: 'Changes of a region’s quorum health',
    labelNames: ['region', 'to'] as const,
    registers: [registry],
  });
  return controller.onChange((events) => {
    for (const e of events) {
      if (e.type === 'switch') switches.inc({ trigger: e.trigger.type, to: e.to });
      if (e.type === 'region-health') healthChanges.inc({ region: e.region, to: e.to });
    }
  });
}

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Outcome } from './runner.js';
import type { Checkpoint, HealthStatus } from './types.js';

const STATUSES: readonly HealthStatus[] = ['pass', 'warn', 'fail'];

/** The health service's Prometheus metrics, registered in the region's registry. */
export class HealthMetrics {
  readonly #status: Gauge<'checkpoint' | 'component' | 'status'>;
  readonly #overall: Gauge<'status'>;
  readonly #duration: Histogram<'checkpoint' | 'component'>;
  readonly #runs: Counter<'checkpoint' | 'component' | 'end'>;

  constructor(registry: Registry) {
    this.#status = new Gauge({
      name: 'iotdr_health_checkpoint_status',
      help: "1 for the checkpoint's last status, 0 for the others",
      labelNames: ['checkpoint', 'component', 'status'] as const,
      registers: [registry],
    });
    this.#overall = new Gauge({
      name: 'iotdr_health_status',
      help: "1 for the region's last overall health status, 0 for the others",
      labelNames: ['status'] as const,
      registers: [registry],
    });
    this.#duration = new Histogram({
      name: 'iotdr_health_checkpoint_duration_seconds',
      help: 'Time a checkpoint run took, up to its timeout',
      labelNames: ['checkpoint', 'component'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.#runs = new Counter({
      name: 'iotdr_health_checkpoint_runs_total',
      help: 'Checkpoint runs by how they ended: completed, timed-out, or skipped (the last run still hanging)',
      labelNames: ['checkpoint', 'component', 'end'] as const,
      registers: [registry],
    });
  }

  observe(checkpoint: Checkpoint, outcome: Outcome): void {
    const labels = { checkpoint: checkpoint.name, component: checkpoint.component };
    for (const status of STATUSES) {
      this.#status.set({ ...labels, status }, status === outcome.result.status ? 1 : 0);
    }
    this.#runs.inc({ ...labels, end: outcome.end });
    if (outcome.end !== 'skipped') this.#duration.observe(labels, outcome.durationMs / 1000);
  }

  overall(status: HealthStatus): void {
    for (const s of STATUSES) this.#overall.set({ status: s }, s === status ? 1 : 0);
  }
}

import { Counter, Gauge, type Registry } from 'prom-client';
import type { Outcome, Transport } from './engine.js';

/** Query types worth their own label value; the rest are counted as `other` to bound cardinality. */
const KNOWN_TYPES = new Set([
  'A',
  'AAAA',
  'TXT',
  'SOA',
  'NS',
  'ANY',
  'CNAME',
  'MX',
  'PTR',
  'SRV',
  'HTTPS',
  'none',
]);

/** The DNS server's Prometheus metrics, registered in the given registry. */
export class DnsMetrics {
  readonly #queries: Counter<'transport' | 'type' | 'rcode'>;
  readonly #truncated: Counter<'transport'>;
  readonly #dropped: Counter<'transport' | 'reason'>;
  readonly #connections: Gauge;
  readonly #rejected: Counter;

  constructor(registry: Registry) {
    this.#queries = new Counter({
      name: 'iotdr_dns_queries_total',
      help: 'DNS queries answered, by transport, query type and response code',
      labelNames: ['transport', 'type', 'rcode'] as const,
      registers: [registry],
    });
    this.#truncated = new Counter({
      name: 'iotdr_dns_truncated_total',
      help: 'UDP responses sent with TC set because the answer did not fit',
      labelNames: ['transport'] as const,
      registers: [registry],
    });
    this.#dropped = new Counter({
      name: 'iotdr_dns_dropped_total',
      help: 'Packets dropped without an answer: shorter than a header, or a response rather than a query',
      labelNames: ['transport', 'reason'] as const,
      registers: [registry],
    });
    this.#connections = new Gauge({
      name: 'iotdr_dns_tcp_connections',
      help: 'Open DNS-over-TCP connections',
      registers: [registry],
    });
    this.#rejected = new Counter({
      name: 'iotdr_dns_tcp_rejected_total',
      help: 'DNS-over-TCP connections closed at once because the connection limit was reached',
      registers: [registry],
    });
  }

  observe(transport: Transport, outcome: Outcome): void {
    if (outcome.type === 'drop') {
      this.#dropped.inc({ transport, reason: outcome.reason });
      return;
    }
    const type = KNOWN_TYPES.has(outcome.qtype) ? outcome.qtype : 'other';
    this.#queries.inc({ transport, type, rcode: outcome.rcode });
    if (outcome.truncated) this.#truncated.inc({ transport });
  }

  connections(count: number): void {
    this.#connections.set(count);
  }

  rejected(): void {
    this.#rejected.inc();
  }
}

import { Counter, Gauge, Registry } from 'prom-client';

/** Why a connection, packet or delivery was refused; the `reason` label of the refusal counter. */
export type RefusalReason =
  | 'rate_limited'
  | 'overloaded'
  | 'max_connections'
  | 'tls_handshake'
  | 'no_client_certificate'
  | 'not_authorized'
  | 'bad_credentials'
  | 'connect_denied'
  | 'publish_denied'
  | 'subscribe_denied'
  | 'receive_denied'
  | 'payload_too_large'
  | 'packet_too_large'
  | 'malformed_packet'
  | 'topic_too_long'
  | 'topic_too_deep';

export interface BrokerMetrics {
  sessions: Gauge<'auth'>;
  /** The session limit in force (limits.maxConnections, resolved when 'auto'). */
  maxSessions: Gauge<never>;
  accepted: Counter<'listener'>;
  /** TLS handshakes completed, `session` full or resumed. */
  handshakes: Counter<'listener' | 'session'>;
  refusals: Counter<'reason'>;
  messages: Counter<never>;
  disconnects: Counter<'cause'>;
}

export function brokerMetrics(registry: Registry = new Registry()): BrokerMetrics {
  const registers = [registry];
  return {
    sessions: new Gauge({
      name: 'iotdr_broker_sessions',
      help: 'Live MQTT sessions by authentication (mtls, token, health)',
      labelNames: ['auth'] as const,
      registers,
    }),
    maxSessions: new Gauge({
      name: 'iotdr_broker_max_sessions',
      help: 'Live MQTT sessions the broker holds at most (health excluded); the next gets CONNACK 3',
      registers,
    }),
    accepted: new Counter({
      name: 'iotdr_broker_connections_accepted_total',
      help: 'TCP connections accepted, before TLS, by listener',
      labelNames: ['listener'] as const,
      registers,
    }),
    handshakes: new Counter({
      name: 'iotdr_broker_tls_handshakes_total',
      help: 'TLS handshakes completed, by listener and session (full, or resumed from a ticket)',
      labelNames: ['listener', 'session'] as const,
      registers,
    }),
    refusals: new Counter({
      name: 'iotdr_broker_refusals_total',
      help: 'Connections, packets and deliveries refused, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    messages: new Counter({
      name: 'iotdr_broker_messages_received_total',
      help: 'Device PUBLISH packets accepted after authorization',
      registers,
    }),
    disconnects: new Counter({
      name: 'iotdr_broker_server_disconnects_total',
      help: 'Sessions closed by the broker: registry (a change revoked them) or request (disconnect API)',
      labelNames: ['cause'] as const,
      registers,
    }),
  };
}

/** What the handshake line's gauges read at scrape time (a HandshakeGate). */
export interface HandshakeLine {
  readonly running: number;
  readonly waiting: number;
  readonly limit: number;
}

/**
 * The handshake line, read when scraped: handshakes running, connections waiting for their turn
 * (above 0 the broker is absorbing more connections than it admits: a storm), and the limit in
 * force as it adapts to the event loop.
 */
export function handshakeMetrics(registry: Registry, line: HandshakeLine): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge('iotdr_broker_handshakes_running', 'TLS handshakes running now', () => line.running);
  gauge(
    'iotdr_broker_handshakes_waiting',
    'Connections waiting for a handshake slot (above 0: more arrive than the broker admits)',
    () => line.waiting,
  );
  gauge(
    'iotdr_broker_handshakes_limit',
    'Handshakes allowed at once, as adapted to the event loop',
    () => line.limit,
  );
}

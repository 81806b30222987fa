import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { Clock, Logger } from '../common/index.js';
import type { CertificateAuthority } from '../pki/index.js';
import type { RegistryService } from '../registry/index.js';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CONNECTIONS_PER_SECOND_PER_ADDRESS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_MAX_TOPIC_LENGTH,
  DEFAULT_MAX_TOPIC_LEVELS,
} from './config.js';

/** Limits every connection is held to; every field is optional, defaults below. */
export interface BrokerLimits {
  /**
   * Live MQTT sessions (both listeners, health sessions excluded); the next CONNECT gets CONNACK 3.
   * A number of sessions, or `'auto'`: derived at start from the process's open-file limit and
   * memory (docs/broker.md, "How many sessions a broker holds"), logged with what bound it.
   * Default 'auto'.
   */
  maxConnections?: number | 'auto';
  /** New TCP connections per second per source address (token bucket refill). Default 100/s. */
  connectionsPerSecondPerAddress?: number;
  /** Token bucket size: connections one address may open at once. Default: connectionsPerSecondPerAddress (one second's worth). */
  connectionBurst?: number;
  /** Largest PUBLISH payload in bytes; a bigger one closes the connection. Default 131,072 (128 KiB, as AWS IoT). */
  maxPayloadBytes?: number;
  /** Longest topic or topic filter in UTF-8 bytes. Default 256 (AWS IoT). */
  maxTopicLength?: number;
  /** Most levels in a topic or filter (AWS IoT allows 7 slashes). Default 8. */
  maxTopicLevels?: number;
  /** Time from TCP accept to a CONNECT packet, TLS handshake included, in ms. Default 10,000. */
  connectTimeoutMs?: number;
  /**
   * TLS handshakes running at once over both listeners, to begin with and at least (it adapts,
   * see maxHandshakesInFlight); more connections wait their turn with no TLS work done (the
   * region's own address skips the line). Default 8.
   */
  handshakesInFlight?: number;
  /**
   * The most handshakes the broker lets run at once as it adapts: it takes a quarter off when its
   * event loop runs late (over 20 ms) while busy with its own work, and adds an eighth while every
   * slot is in use and the loop keeps up (or is late only for want of CPU). Default 128.
   */
  maxHandshakesInFlight?: number;
  /**
   * Connections waiting for a handshake slot at most. Default 100,000: in practice the broker's
   * session room bounds the line (sessions up, handshakes running and connections waiting never
   * exceed maxConnections, so waiting sockets share the sessions' file descriptors and none waits
   * only to be refused CONNACK 3), together with handshakeWaitMs.
   */
  handshakesWaiting?: number;
  /**
   * The longest a connection waits for its handshake slot, ms. The line is served in arrival
   * order; a newcomer whose expected wait (the line ÷ the rate handshakes lately finished) is over
   * three quarters of this is closed at once with no TLS work done (`reason: overloaded`), and one
   * that waited longer all the same is closed when its turn comes. Default 30,000: within the
   * patience of common clients (MQTT.js and Paho wait 30 s for CONNACK; the device SDK 60 s once
   * its TCP connection is up).
   */
  handshakeWaitMs?: number;
  /**
   * Connections the kernel holds for the broker to accept (the listen backlog, capped by the
   * system's `net.core.somaxconn`). When it is full the kernel drops new connections' SYNs and the
   * clients try again only after their SYN retransmission timeout (1 s, then 3 s, 7 s…): a storm
   * then idles both sides. Default 4,096 (Node's own is 511), so a storm waits in the queue
   * instead of retrying a second later.
   */
  listenBacklog?: number;
}

/** The limits in force: every default filled in, the session limit resolved to a number. */
export type ResolvedLimits = Required<Omit<BrokerLimits, 'maxConnections'>> & { maxConnections: number };

export const DEFAULT_LIMITS: Readonly<Required<BrokerLimits>> = Object.freeze({
  maxConnections: DEFAULT_MAX_CONNECTIONS,
  connectionsPerSecondPerAddress: DEFAULT_CONNECTIONS_PER_SECOND_PER_ADDRESS,
  connectionBurst: DEFAULT_CONNECTIONS_PER_SECOND_PER_ADDRESS,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  maxTopicLength: DEFAULT_MAX_TOPIC_LENGTH,
  maxTopicLevels: DEFAULT_MAX_TOPIC_LEVELS,
  connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
  handshakesInFlight: 8,
  maxHandshakesInFlight: 128,
  handshakesWaiting: 100_000,
  handshakeWaitMs: 30_000,
  listenBacklog: 4_096,
});

/** The optional username/password listener (off unless given). */
export interface TokenListenerOptions {
  /** Default: the broker's host. */
  host?: string;
  /** Default 8884; 0 picks a free port. */
  port?: number;
}

/**
 * TLS session resumption across brokers (docs/broker.md, "Session resumption"): every broker
 * given the same secret accepts the others' session tickets.
 */
export interface TlsTicketOptions {
  /**
   * At least 32 random bytes, the same in every broker of every region; a region reads it from
   * `<state>/secrets/tls-tickets.key`. Each period's ticket key is derived from it.
   */
  secret: Buffer;
  /**
   * How long one ticket key seals new tickets, in ms; a ticket stays resumable for two periods.
   * Every broker must use the same period. Default 86,400,000 (24 h); 1,000 to 302,400,000 (84 h,
   * so two periods stay within TLS 1.3's 7-day ticket lifetime).
   */
  rotateMs?: number;
}

/** What runs the region's listeners in other processes (workers on every core); see createBroker. */
export interface NodeRunner {
  /** Starts the nodes; resolves with the addresses they share once every one listens. */
  listen(): Promise<{ tls: { host: string; port: number }; token?: { host: string; port: number } }>;
  /** Stops every node. Idempotent. */
  close(): Promise<void>;
  /** Every node's metrics (prom-client JSON), for the region's /metrics. */
  metrics?(): Promise<MetricObjectWithValues<MetricValue<string>>[][]>;
}

/**
 * One region's broker across processes and hosts (docs/broker.md, "Workers and hosts"): every
 * node shares the region's own Redis for messages, retained messages and persistent sessions.
 */
export interface BrokerClusterOptions {
  /** The region's Redis, e.g. `redis://127.0.0.1:6379/0`. Never shared with another region. */
  redis: string;
  /** Redis AUTH password (read from a file, never in the URL). */
  password?: string;
  /** This process's node id, unique in the region. Default: the region name and a random suffix. */
  node?: string;
  /** Other processes listen for the region; this one is then only the hub. Default: it listens too. */
  nodes?: NodeRunner;
}

export interface BrokerOptions {
  /** This region's name: SAN of the server certificate and part of the health topic prefix. */
  region: string;
  service: RegistryService;
  /** The embedded CA: issues the server and health certificates. */
  ca: CertificateAuthority;
  /** The fleet's DNS zone, e.g. 'iot.test'; `mqtt.<zone>` and `api.<zone>` go in the server SAN. */
  zone: string;
  /** The devices' DR name (SNI, server certificate CN and SAN). Default `mqtt.<zone>`. */
  mqttName?: string;
  /** The command-and-control DR name, also in the SAN. Default `api.<zone>`. */
  apiName?: string;
  /** Listen address of the mTLS listener. Default '127.0.0.1'. */
  host?: string;
  /** Listen port of the mTLS listener. Default 8883; 0 picks a free port. */
  port?: number;
  /** Further SAN entries (names or IP addresses) for the server certificate, e.g. the region's public name. */
  serverNames?: string[];
  /** Enables the token listener. Default: off. */
  tokenListener?: TokenListenerOptions;
  limits?: BrokerLimits;
  /** Share the broker with other processes and hosts through Redis. Default: one process, in memory. */
  cluster?: BrokerClusterOptions;
  /** Session ticket keys shared with other brokers. Default: a random secret of this broker's own (it resumes only its own sessions). */
  tlsTickets?: TlsTicketOptions;
  logger: Logger;
  /** The region's Prometheus registry; a private one when absent. */
  metrics?: Registry;
  clock?: Clock;
}

import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type Clock, type FieldIssue, systemClock, ValidationError } from '../common/index.js';
import {
  BrokerEngine,
  type DisconnectTarget,
  HEALTH_CLIENT_PREFIX,
  type MessageListener,
  type PublishOptions,
  type SubscribeListener,
} from './engine.js';
import { HandshakeGate } from './handshakes.js';
import { type ListenAddress, TlsListener } from './listener.js';
import { type BrokerMetrics, brokerMetrics, handshakeMetrics } from './metrics.js';
import {
  type BrokerOptions,
  DEFAULT_LIMITS,
  DEFAULT_MQTT_PORT,
  DEFAULT_TOKEN_PORT,
  type ResolvedLimits,
} from './options.js';
import { ConnectionRateLimiter } from './rate-limit.js';
import type { ConnectionInfo, ConnectionMeta } from './session.js';
import { FAILOVER_NOTICE_TOPIC } from './template.js';
import {
  DEFAULT_TICKET_ROTATE_MS,
  MAX_TICKET_ROTATE_MS,
  MIN_TICKET_ROTATE_MS,
  newTicketSecret,
  TICKET_SECRET_BYTES,
  TicketKeySchedule,
} from './tickets.js';

export interface BrokerAddresses {
  tls: ListenAddress;
  token?: ListenAddress;
}

/** The failover controller's message to every device: where to go now. */
export interface FailoverNotice {
  activeRegion: string;
  /** Fencing epoch of the switch; devices ignore a notice older than one they saw. */
  epoch: number;
  /** ISO 8601 time of the switch. */
  at: string;
}

/** What the health checkpoint needs for a real MQTT round trip through the TLS listener. */
export interface HealthIdentityMaterial {
  certPem: string;
  keyPem: string;
  /** The embedded CA, to verify the broker. */
  caPem: string;
  /** SNI and name to verify, `mqtt.<zone>`. */
  servername: string;
  /** The identity may publish, subscribe and receive only under this prefix, e.g. `$iotdr/health/us-east/`. */
  topicPrefix: string;
  /** Client ids must start with this. */
  clientIdPrefix: string;
  /**
   * The address the probe connects from: the listener's own IP, which the per-address connection
   * limit exempts, so a flood of devices from one address cannot fail the region's health. Absent
   * when the listener is on a wildcard or a name.
   */
  localAddress?: string;
}

/**
 * One region's MQTT broker: the engine (Aedes with registry decisions) behind a mutual-TLS
 * listener and, when enabled, a token listener. Build with createBroker, then listen().
 */
export class RegionBroker {
  readonly region: string;
  readonly #engine: BrokerEngine;
  readonly #listeners: TlsListener[];
  readonly #health: HealthIdentityMaterial;
  #closing: Promise<void> | undefined;

  /** @internal use createBroker */
  constructor(
    region: string,
    engine: BrokerEngine,
    listeners: TlsListener[],
    health: HealthIdentityMaterial,
  ) {
    this.region = region;
    this.#engine = engine;
    this.#listeners = listeners;
    this.#health = health;
  }

  /** Starts the listeners; resolves with their bound addresses. */
  async listen(): Promise<BrokerAddresses> {
    const [tls, token] = await Promise.all(this.#listeners.map((l) => l.listen()));
    if (tls === undefined) throw new Error('the broker has no TLS listener');
    return token === undefined ? { tls } : { tls, token };
  }

  /** Closes the listeners and every session. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(this.#listeners.map((l) => l.close()));
      await this.#engine.close();
    })();
    return this.#closing;
  }

  /** Device publishes that passed authorization; returns the unsubscribe function. */
  onMessage(listener: MessageListener): () => void {
    return this.#engine.onMessage(listener);
  }

  /** Subscriptions a device made and was allowed; returns the unsubscribe function. */
  onSubscribe(listener: SubscribeListener): () => void {
    return this.#engine.onSubscribe(listener);
  }

  /** Whether a live session of this thing is connected here. */
  isConnected(thingName: string): boolean {
    return this.#engine.connections().some((c) => c.thing === thingName);
  }

  /** Internal publish (shadow replies, notices, rule republish); deliveries still pass each subscriber's iot:Receive. */
  publish(topic: string, payload: Buffer | string, options?: PublishOptions): Promise<void> {
    return this.#engine.publish(topic, payload, options);
  }

  /** Live device sessions (the health identity's are not listed). */
  connections(): ConnectionInfo[] {
    return this.#engine.connections();
  }

  /** Closes the sessions of a thing, of a group's things, or all; resolves with how many. Unknown group: NotFoundError. */
  disconnect(target: DisconnectTarget): Promise<number> {
    return this.#engine.disconnect(target);
  }

  /** Publishes the notice retained at QoS 1 on `$iotdr/notices/failover`. */
  publishFailoverNotice(notice: FailoverNotice): Promise<void> {
    const payload = JSON.stringify({ activeRegion: notice.activeRegion, epoch: notice.epoch, at: notice.at });
    return this.#engine.publish(FAILOVER_NOTICE_TOPIC, payload, { qos: 1, retain: true });
  }

  healthIdentity(): HealthIdentityMaterial {
    return { ...this.#health };
  }
}

function resolveLimits(options: BrokerOptions): ResolvedLimits {
  const limits = { ...DEFAULT_LIMITS };
  // The burst follows the rate unless given: one second's worth of connections at once.
  const given = options.limits ?? {};
  if (given.connectionBurst === undefined && given.connectionsPerSecondPerAddress !== undefined) {
    limits.connectionBurst = given.connectionsPerSecondPerAddress;
  }
  const issues: FieldIssue[] = [];
  for (const [key, value] of Object.entries(options.limits ?? {}) as Array<[keyof ResolvedLimits, unknown]>) {
    if (value === undefined) continue;
    if (!Object.hasOwn(DEFAULT_LIMITS, key)) {
      issues.push({ path: `limits.${key}`, message: 'unknown limit' });
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      issues.push({ path: `limits.${key}`, message: `must be a positive number, got ${String(value)}` });
    } else {
      limits[key] = value;
    }
  }
  if (issues.length > 0) {
    throw new ValidationError(
      `invalid broker limits: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
      'IOTDR_BROKER_INVALID_OPTIONS',
    );
  }
  return limits;
}

/** The ticket key schedule from `tlsTickets`, checked; a secret of its own when none is given. */
function ticketSchedule(options: BrokerOptions, clock: Clock): TicketKeySchedule {
  const given = options.tlsTickets;
  const secret = given?.secret ?? Buffer.from(newTicketSecret(), 'base64url');
  const rotateMs = given?.rotateMs ?? DEFAULT_TICKET_ROTATE_MS;
  const issues: FieldIssue[] = [];
  if (!Buffer.isBuffer(secret) || secret.length < TICKET_SECRET_BYTES)
    issues.push({
      path: 'tlsTickets.secret',
      message: `must be at least ${TICKET_SECRET_BYTES} random bytes`,
    });
  if (!Number.isInteger(rotateMs) || rotateMs < MIN_TICKET_ROTATE_MS || rotateMs > MAX_TICKET_ROTATE_MS)
    issues.push({
      path: 'tlsTickets.rotateMs',
      message: `must be an integer from ${MIN_TICKET_ROTATE_MS} to ${MAX_TICKET_ROTATE_MS} ms, got ${String(rotateMs)}`,
    });
  if (issues.length > 0) {
    throw new ValidationError(
      `invalid broker options: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
      'IOTDR_BROKER_INVALID_OPTIONS',
    );
  }
  return new TicketKeySchedule({ secret, rotateMs, clock });
}

function mqttNameOf(options: BrokerOptions): string {
  return options.mqttName ?? `mqtt.${options.zone}`;
}

/** SAN of the server certificate: the DR names, the region's name and its listen address. */
function serverAltNames(options: BrokerOptions): { dnsNames: string[]; ipAddresses: string[] } {
  const names = [mqttNameOf(options), options.apiName ?? `api.${options.zone}`, options.region];
  names.push(...(options.serverNames ?? []));
  const host = options.host ?? '127.0.0.1';
  if (host !== '0.0.0.0' && host !== '::') names.push(host);
  const dnsNames = new Set<string>();
  const ipAddresses = new Set<string>();
  for (const name of names) (isIP(name) === 0 ? dnsNames : ipAddresses).add(name.toLowerCase());
  return { dnsNames: [...dnsNames], ipAddresses: [...ipAddresses] };
}

/**
 * Builds a region's broker: issues its server certificate and its health identity from the
 * embedded CA (both in memory only), starts the engine. Call listen() to accept connections.
 */
export async function createBroker(options: BrokerOptions): Promise<RegionBroker> {
  const limits = resolveLimits(options);
  const clock = options.clock ?? systemClock;
  const tickets = ticketSchedule(options, clock);
  const logger = options.logger.child({ component: 'broker' });
  const metrics: BrokerMetrics = brokerMetrics(options.metrics);
  const server = await options.ca.issueServerCertificate({
    commonName: mqttNameOf(options),
    ...serverAltNames(options),
  });
  const healthCert = await options.ca.issueDeviceCertificate({
    commonName: `iotdr-health-${options.region}`,
  });
  const health: HealthIdentityMaterial = {
    certPem: healthCert.certificatePem,
    keyPem: healthCert.privateKeyPem,
    caPem: options.ca.certificatePem,
    servername: mqttNameOf(options),
    topicPrefix: `$iotdr/health/${options.region}/`,
    clientIdPrefix: HEALTH_CLIENT_PREFIX,
  };
  const engine = new BrokerEngine({
    service: options.service,
    logger,
    clock,
    limits,
    metrics,
    healthCertificateId: healthCert.certificateId,
    healthTopicPrefix: health.topicPrefix,
  });
  await engine.start();
  const limiter = new ConnectionRateLimiter(
    limits.connectionsPerSecondPerAddress,
    limits.connectionBurst,
    clock,
  );
  const host = options.host ?? '127.0.0.1';
  const own = ownAddress(host);
  if (own !== undefined) health.localAddress = own;
  const handshakes = new HandshakeGate({
    limit: limits.handshakesInFlight,
    maxLimit: limits.maxHandshakesInFlight,
    maxWaiting: limits.handshakesWaiting,
    // A connection that waited its whole connect timeout is closed rather than started.
    maxWaitMs: limits.connectTimeoutMs,
    now: () => clock.now(),
  });
  if (options.metrics) handshakeMetrics(options.metrics, handshakes);
  const common = {
    handshakes,
    exempt: own === undefined ? new Set<string>() : new Set([own, `::ffff:${own}`]),
    certPem: server.certificatePem,
    keyPem: server.privateKeyPem,
    caPem: options.ca.certificatePem,
    handshakeTimeoutMs: limits.connectTimeoutMs,
    backlog: limits.listenBacklog,
    tickets,
    limiter,
    clock,
    metrics,
    logger,
    onSecure: (socket: TLSSocket, meta: ConnectionMeta) => engine.handle(socket, meta),
  };
  const listeners = [
    new TlsListener({ ...common, transport: 'mtls', host, port: options.port ?? DEFAULT_MQTT_PORT }),
  ];
  const token = options.tokenListener;
  if (token !== undefined) {
    listeners.push(
      new TlsListener({
        ...common,
        transport: 'token',
        host: token.host ?? host,
        port: token.port ?? DEFAULT_TOKEN_PORT,
      }),
    );
  }
  return new RegionBroker(options.region, engine, listeners, health);
}

/** The listener's host as an address a local socket can bind to; undefined for a wildcard or a name. */
function ownAddress(host: string): string | undefined {
  const kind = isIP(host);
  if (kind === 0) return undefined;
  if (host === '0.0.0.0' || host === '::') return undefined;
  return host;
}

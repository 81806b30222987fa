import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  type Clock,
  DEFAULT_API_NAME,
  DEFAULT_MQTT_NAME,
  DEFAULT_MQTT_PORT,
  DEFAULT_MQTT_TOKEN_PORT,
  type FieldIssue,
  type Logger,
  systemClock,
} from '../common/index.js';
import { resolveSessionLimit } from './capacity.js';
import { type ClusterBackend, redisBackend } from './cluster.js';
import {
  BrokerEngine,
  type DisconnectTarget,
  HEALTH_CLIENT_PREFIX,
  type MessageListener,
  type PublishOptions,
  type SubscribeListener,
} from './engine.js';
import { invalidBrokerOptions, staleNotice } from './errors.js';
import { HandshakeGate } from './handshakes.js';
import { HubLink, type LocalHandler, NodeLink } from './link.js';
import { type ListenAddress, TlsListener } from './listener.js';
import { type BrokerMetrics, brokerMetrics, handshakeMetrics } from './metrics.js';
import {
  type BrokerClusterOptions,
  type BrokerLimits,
  type BrokerOptions,
  DEFAULT_LIMITS,
  type NodeRunner,
  type ResolvedLimits,
} from './options.js';
import { ConnectionRateLimiter } from './rate-limit.js';
import { type ConnectionInfo, type ConnectionMeta, changedDependencies } from './session.js';
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
 * One region's broker: the engine (Aedes with registry decisions) behind a mutual-TLS listener
 * and, when enabled, a token listener. Build with createBroker, then listen(). In a cluster
 * (`cluster` option) this process is the region's hub: sessions, messages and disconnects are
 * those of every node on the region's Redis.
 */
export class RegionBroker {
  readonly region: string;
  readonly #engine: BrokerEngine;
  readonly #listeners: TlsListener[];
  readonly #health: HealthIdentityMaterial;
  readonly #cluster: HubParts | undefined;
  /** The failover notice of the highest epoch this broker published. */
  #notice: FailoverNotice | undefined;
  #closing: Promise<void> | undefined;

  /** @internal use createBroker */
  constructor(
    region: string,
    engine: BrokerEngine,
    listeners: TlsListener[],
    health: HealthIdentityMaterial,
    cluster?: HubParts,
  ) {
    this.region = region;
    this.#engine = engine;
    this.#listeners = listeners;
    this.#health = health;
    this.#cluster = cluster;
  }

  /** Starts the listeners (or the nodes that hold them); resolves with their bound addresses. */
  async listen(): Promise<BrokerAddresses> {
    const nodes = this.#cluster?.nodes;
    if (nodes) return nodes.listen();
    const [tls, token] = await Promise.all(this.#listeners.map((l) => l.listen()));
    if (tls === undefined) throw new Error('the broker has no TLS listener');
    this.#cluster?.node?.serving();
    return token === undefined ? { tls } : { tls, token };
  }

  /** Closes the listeners and every session (every node's, in a cluster). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const cluster = this.#cluster;
      await Promise.all([...this.#listeners.map((l) => l.close()), cluster?.nodes?.close()]);
      cluster?.node?.close();
      cluster?.hub.close();
      cluster?.stop();
      await this.#engine.close();
      await cluster?.backend.close();
    })();
    return this.#closing;
  }

  /** Device publishes that passed authorization; returns the unsubscribe function. */
  onMessage(listener: MessageListener): () => void {
    return (this.#cluster?.hub ?? this.#engine).onMessage(listener);
  }

  /** Subscriptions a device made and was allowed; returns the unsubscribe function. */
  onSubscribe(listener: SubscribeListener): () => void {
    return (this.#cluster?.hub ?? this.#engine).onSubscribe(listener);
  }

  /** Whether a live session of this thing is connected here (on any node of the region). */
  isConnected(thingName: string): boolean {
    const hub = this.#cluster?.hub;
    if (hub) return hub.isConnected(thingName);
    return this.#engine.connections().some((c) => c.thing === thingName);
  }

  /** Internal publish (shadow replies, notices, rule republish); deliveries still pass each subscriber's iot:Receive. */
  publish(topic: string, payload: Buffer | string, options?: PublishOptions): Promise<void> {
    return this.#engine.publish(topic, payload, options);
  }

  /** Live device sessions (the health identity's are not listed), on every node of a cluster. */
  connections(): ConnectionInfo[] {
    return (this.#cluster?.hub ?? this.#engine).connections();
  }

  /** Broker nodes heard on the cluster link; empty outside a cluster. */
  nodes(): string[] {
    return this.#cluster?.hub.nodes() ?? [];
  }

  /** Closes the sessions of a thing, of a group's things, or all; resolves with how many. Unknown group: NotFoundError. */
  async disconnect(target: DisconnectTarget): Promise<number> {
    const cluster = this.#cluster;
    if (!cluster) return this.#engine.disconnect(target);
    let things: Set<string> | undefined;
    if ('thing' in target) things = new Set([target.thing]);
    else if ('group' in target) things = new Set(await cluster.listGroupThings(target.group));
    return await cluster.hub.disconnect(things);
  }

  /**
   * Publishes the notice retained at QoS 1 on `$iotdr/notices/failover`, unless this broker
   * published one of a higher epoch since it started: a notice of a lower epoch (a deposed control
   * node's, one relayed late) would replace the newer retained one, so it is refused with
   * IOTDR_BROKER_NOTICE_STALE, as is one of the same epoch naming another region. The same notice
   * again is not published twice. Resolves with the notice the broker holds.
   */
  async publishFailoverNotice(notice: FailoverNotice): Promise<FailoverNotice> {
    const kept = this.#notice;
    if (kept !== undefined && notice.epoch <= kept.epoch) {
      if (notice.epoch === kept.epoch && notice.activeRegion === kept.activeRegion) return { ...kept };
      throw staleNotice(notice, kept);
    }
    const next = { activeRegion: notice.activeRegion, epoch: notice.epoch, at: notice.at };
    // Taken before the publish, so a lower notice arriving meanwhile is refused.
    this.#notice = next;
    try {
      await this.#engine.publish(FAILOVER_NOTICE_TOPIC, JSON.stringify(next), { qos: 1, retain: true });
    } catch (error) {
      if (this.#notice === next) this.#notice = kept;
      throw error;
    }
    return { ...next };
  }

  healthIdentity(): HealthIdentityMaterial {
    return { ...this.#health };
  }
}

/** A hub's parts (createBroker with `cluster`). */
interface HubParts {
  backend: ClusterBackend;
  hub: HubLink;
  /** This process's own node, when it listens too. */
  node?: NodeLink;
  nodes?: NodeRunner;
  listGroupThings(group: string): Promise<string[]>;
  /** Stops following the registry's commits. */
  stop(): void;
}

function resolveLimits(options: BrokerOptions, logger: Logger): ResolvedLimits {
  const limits: Required<BrokerLimits> = { ...DEFAULT_LIMITS };
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
    } else if (key === 'maxConnections' && value === 'auto') {
      limits.maxConnections = value;
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      const valid = key === 'maxConnections' ? '"auto" or a positive number' : 'a positive number';
      issues.push({ path: `limits.${key}`, message: `must be ${valid}, got ${String(value)}` });
    } else {
      limits[key] = value;
    }
  }
  if (issues.length > 0) {
    throw invalidBrokerOptions(
      `invalid broker limits: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
  }
  // Handshakes in flight hold a socket each before they are sessions; the line's sockets come out
  // of the sessions' own room (the gate admits none beyond it).
  const handshakeSockets = limits.maxHandshakesInFlight;
  return { ...limits, maxConnections: resolveSessionLimit(limits.maxConnections, handshakeSockets, logger) };
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
    throw invalidBrokerOptions(
      `invalid broker options: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
  }
  return new TicketKeySchedule({ secret, rotateMs, clock });
}

function mqttNameOf(options: BrokerOptions): string {
  return options.mqttName ?? `${DEFAULT_MQTT_NAME}.${options.zone}`;
}

/** SAN of the server certificate: the DR names, the region's name and its listen address. */
function serverAltNames(options: BrokerOptions): { dnsNames: string[]; ipAddresses: string[] } {
  const names = [
    mqttNameOf(options),
    options.apiName ?? `${DEFAULT_API_NAME}.${options.zone}`,
    options.region,
  ];
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
 * With `cluster`, the engine joins the region's Redis and this process becomes its hub.
 */
export async function createBroker(options: BrokerOptions): Promise<RegionBroker> {
  const parts = await brokerParts(options);
  const { logger, limits, metrics, clock } = parts;
  const healthCert = await options.ca.issueDeviceCertificate({
    commonName: `iotdr-health-${options.region}`,
  });
  const health: HealthIdentityMaterial = {
    certPem: healthCert.certificatePem,
    keyPem: healthCert.privateKeyPem,
    caPem: options.ca.certificatePem,
    servername: mqttNameOf(options),
    topicPrefix: healthTopicPrefixOf(options.region),
    clientIdPrefix: HEALTH_CLIENT_PREFIX,
  };
  const own = ownAddress(options.host ?? '127.0.0.1');
  if (own !== undefined) health.localAddress = own;
  const cluster = options.cluster;
  const backend = cluster === undefined ? undefined : await joinRedis(options, cluster, logger);
  try {
    const engine = new BrokerEngine({
      service: options.service,
      logger,
      clock,
      limits,
      metrics,
      healthCertificateId: healthCert.certificateId,
      healthTopicPrefix: health.topicPrefix,
      domainName: mqttNameOf(options),
      ...(backend === undefined ? {} : { backend, followCommits: false }),
    });
    await engine.start();
    if (cluster === undefined || backend === undefined) {
      return new RegionBroker(options.region, engine, buildListeners(options, parts, engine), health);
    }
    const service = options.service;
    const listGroupThings = (group: string) => service.listGroupThings(group);
    const hub = new HubLink({
      mq: backend.mq,
      healthCertificateId: healthCert.certificateId,
      logger,
    });
    await hub.start();
    // Every node, this one included, hears of registry changes through the link.
    const stop = service.onCommit((changes) => hub.changed(changedDependencies(changes)));
    const hubParts: HubParts = {
      backend,
      hub,
      listGroupThings,
      stop,
    };
    if (cluster.nodes !== undefined) {
      hubParts.nodes = cluster.nodes;
      return new RegionBroker(options.region, engine, [], health, hubParts);
    }
    hubParts.node = new NodeLink({ mq: backend.mq, hub, node: backend.id, engine, logger });
    await hubParts.node.start();
    return new RegionBroker(options.region, engine, buildListeners(options, parts, engine), health, hubParts);
  } catch (error) {
    await backend?.close();
    throw error;
  }
}

/** How long a node waits to hear its hub before it gives up listening, in ms. */
export const NODE_HUB_WAIT_MS = 30_000;

/**
 * One broker node of a region that runs elsewhere (a worker on another core, another host): the
 * same listeners and engine, on the region's Redis, told by the hub what the registry changed and
 * which health identity to admit. It reads the registry from the region's store (`service`).
 */
export class BrokerNode {
  readonly id: string;
  readonly #engine: BrokerEngine;
  readonly #listeners: TlsListener[];
  readonly #link: NodeLink;
  readonly #backend: ClusterBackend;
  #closing: Promise<void> | undefined;

  /** @internal use createBrokerNode */
  constructor(engine: BrokerEngine, listeners: TlsListener[], link: NodeLink, backend: ClusterBackend) {
    this.id = backend.id;
    this.#engine = engine;
    this.#listeners = listeners;
    this.#link = link;
    this.#backend = backend;
  }

  /** Waits for the hub (at most `hubWaitMs`), then listens; resolves with the bound addresses. */
  async listen(hubWaitMs = NODE_HUB_WAIT_MS): Promise<BrokerAddresses> {
    await this.#link.hubHeard(hubWaitMs);
    const [tls, token] = await Promise.all(this.#listeners.map((l) => l.listen()));
    if (tls === undefined) throw new Error('the broker node has no TLS listener');
    this.#link.serving();
    return token === undefined ? { tls } : { tls, token };
  }

  /** Live device sessions on this node. */
  connections(): ConnectionInfo[] {
    return this.#engine.connections();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(this.#listeners.map((l) => l.close()));
      this.#link.close();
      await this.#engine.close();
      await this.#backend.close();
    })();
    return this.#closing;
  }
}

/**
 * Builds a broker node; `cluster.redis` is required, `cluster.nodes` is not used. `local` runs
 * first on each device message and says whether the hub must take it too (default: always).
 */
export async function createBrokerNode(
  options: BrokerOptions & { cluster: BrokerClusterOptions; local?: LocalHandler },
): Promise<BrokerNode> {
  const parts = await brokerParts(options);
  const { logger, limits, metrics, clock } = parts;
  const backend = await joinRedis(options, options.cluster, logger);
  try {
    const engine = new BrokerEngine({
      service: options.service,
      logger,
      clock,
      limits,
      metrics,
      healthTopicPrefix: healthTopicPrefixOf(options.region),
      domainName: mqttNameOf(options),
      backend,
      followCommits: false,
    });
    await engine.start();
    const link = new NodeLink({
      mq: backend.mq,
      node: backend.id,
      engine,
      logger,
      ...(options.local === undefined ? {} : { local: options.local }),
    });
    await link.start();
    return new BrokerNode(engine, buildListeners(options, parts, engine), link, backend);
  } catch (error) {
    await backend.close();
    throw error;
  }
}

/** This process's backend on the region's Redis, under its node id. */
function joinRedis(
  options: BrokerOptions,
  cluster: BrokerClusterOptions,
  logger: Logger,
): Promise<ClusterBackend> {
  return redisBackend({
    url: cluster.redis,
    ...(cluster.password === undefined ? {} : { password: cluster.password }),
    id: cluster.node ?? `${options.region}-${process.pid}-${randomUUID().slice(0, 8)}`,
    logger,
  });
}

/** Topics the region's health identity may use. */
function healthTopicPrefixOf(region: string): string {
  return `$iotdr/health/${region}/`;
}

/** What every broker process builds first: limits, tickets, metrics and its server certificate. */
interface BrokerParts {
  limits: ResolvedLimits;
  clock: Clock;
  tickets: TicketKeySchedule;
  logger: Logger;
  metrics: BrokerMetrics;
  server: { certificatePem: string; privateKeyPem: string };
}

async function brokerParts(options: BrokerOptions): Promise<BrokerParts> {
  const logger = options.logger.child({ component: 'broker' });
  const limits = resolveLimits(options, logger);
  const clock = options.clock ?? systemClock;
  const tickets = ticketSchedule(options, clock);
  const metrics: BrokerMetrics = brokerMetrics(options.metrics);
  metrics.maxSessions.set(limits.maxConnections);
  const server = await options.ca.issueServerCertificate({
    commonName: mqttNameOf(options),
    ...serverAltNames(options),
  });
  return { limits, clock, tickets, logger, metrics, server };
}

/** The mutual-TLS listener and, when enabled, the token listener, feeding `engine`. */
function buildListeners(options: BrokerOptions, parts: BrokerParts, engine: BrokerEngine): TlsListener[] {
  const { limits, clock, logger, metrics, tickets, server } = parts;
  const limiter = new ConnectionRateLimiter(
    limits.connectionsPerSecondPerAddress,
    limits.connectionBurst,
    clock,
  );
  const host = options.host ?? '127.0.0.1';
  const own = ownAddress(host);
  const handshakes = new HandshakeGate({
    limit: limits.handshakesInFlight,
    maxLimit: limits.maxHandshakesInFlight,
    maxWaiting: limits.handshakesWaiting,
    maxWaitMs: limits.handshakeWaitMs,
    room: () => limits.maxConnections - engine.sessionCount,
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
        port: token.port ?? DEFAULT_MQTT_TOKEN_PORT,
      }),
    );
  }
  return listeners;
}

/** The listener's host as an address a local socket can bind to; undefined for a wildcard or a name. */
function ownAddress(host: string): string | undefined {
  const kind = isIP(host);
  if (kind === 0) return undefined;
  if (host === '0.0.0.0' || host === '::') return undefined;
  return host;
}

import type { Duplex } from 'node:stream';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import type { Clock, Logger } from '../common/index.js';
import type { PolicyContext, RegistryService } from '../registry/index.js';
import {
  type ConnectionFacts,
  connectContext,
  connectionFacts,
  recordConnect,
  withConnection,
} from './connection-facts.js';
import { connectDenied, messageIdOf, publishRefusal, refusalOf, subscribeRefusal } from './decide.js';
import { brokerClosed } from './errors.js';
import { PacketSizeGuard } from './guard.js';
import {
  type Identity,
  policyContext,
  type Resolution,
  resolveCertificate,
  resolveToken,
} from './identity.js';
import type { BrokerMetrics, RefusalReason } from './metrics.js';
import type { ResolvedLimits } from './options.js';
import {
  type ConnectionInfo,
  type ConnectionMeta,
  changedDependencies,
  dependencies,
  type Session,
} from './session.js';

/** A device PUBLISH that passed authorization, for shadows and rules. */
export interface InboundMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  clientId: string;
  thingName?: string;
  /** JSON payload's top-level string `messageId` (1..128 chars) when present */
  messageId?: string;
  /** ms epoch */
  receivedAt: number;
  /**
   * Set on a message a broker node handed to the hub after running the rules' bus appends itself
   * (JetStream): the hub runs only the other actions, naming the event `eventId` as the node did.
   */
  busHandled?: { eventId?: string };
}

/**
 * Takes a device's message. A QoS1 message is acknowledged once every listener's promise settles;
 * a rejection withholds the PUBACK and closes the session, so the device sends it again.
 */
export type MessageListener = (message: InboundMessage) => void | Promise<void>;

/** A device's accepted subscriptions (after iot:Subscribe), e.g. to deliver what waits for it. */
export interface SubscribeEvent {
  clientId: string;
  thingName?: string;
  topics: string[];
}
export type SubscribeListener = (event: SubscribeEvent) => void;

export interface PublishOptions {
  /** Default 0. */
  qos?: 0 | 1;
  /** Default false. */
  retain?: boolean;
}

/** Whom a server-side disconnect is for: one thing, the things of a group, or everyone. */
export type DisconnectTarget = { thing: string } | { group: string } | { all: true };

/** A device session that started (`up`) or ended on this engine. */
export interface SessionEvent {
  up: boolean;
  info: ConnectionInfo;
}
export type SessionListener = (event: SessionEvent) => void;

/**
 * Aedes' scale-out path: an emitter and a persistence shared by every broker node of a region
 * (Redis, see cluster.ts). Absent, both are Aedes' in-memory defaults.
 */
export interface EngineBackend {
  /** Unique per broker node: Aedes names its `$SYS` topics and client takeovers with it. */
  id: string;
  mq: unknown;
  persistence: unknown;
}

export interface EngineOptions {
  service: RegistryService;
  logger: Logger;
  clock: Clock;
  limits: ResolvedLimits;
  metrics: BrokerMetrics;
  /** Certificate id of the in-memory health identity; a cluster node learns it from the hub (trustHealthCertificate). */
  healthCertificateId?: string;
  /** Topics the health identity may use, e.g. `$iotdr/health/us-east/`. */
  healthTopicPrefix: string;
  /** The broker's MQTT name: `iot:DomainName` of a client that sent no TLS SNI. */
  domainName?: string;
  backend?: EngineBackend;
  /**
   * Follow the service's own commits (default true). A cluster node is told of changes by its
   * hub instead (`changed`), since the registry commits in another process.
   */
  followCommits?: boolean;
}

/** Client ids the health identity may connect with. */
export const HEALTH_CLIENT_PREFIX = 'iotdr-health-';
/**
 * Topics the broker nodes of a region talk on (link.ts). No client may publish, subscribe or
 * receive under it, whatever its policies allow.
 */
export const CLUSTER_TOPIC_PREFIX = '$iotdr/cluster/';
/** Bytes a PUBLISH needs beyond topic and payload: topic length, packet id, MQTT 5 properties. */
const PACKET_OVERHEAD = 1024;
/** setTimeout's largest delay; a later certificate expiry is re-armed when this fires. */
const MAX_TIMER_MS = 2_147_483_647;

function authError(returnCode: 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/**
 * The MQTT engine: Aedes with every CONNECT, PUBLISH, SUBSCRIBE and delivery decided by the
 * registry's policies, and sessions kept in step with registry changes. It owns no socket: a
 * listener hands it each connection's stream (`handle`) with what TLS established.
 */
export class BrokerEngine {
  readonly #options: EngineOptions;
  readonly #log: Logger;
  readonly #meta = new WeakMap<Duplex, ConnectionMeta>();
  /** What each connection tells its policies (connection-facts.ts), by the same stream. */
  readonly #facts = new WeakMap<Duplex, ConnectionFacts>();
  /** The clock as `aws:CurrentTime` reads it, one function for every session. */
  readonly #now: () => number;
  /** Every session that authenticated, until its client is collected: wills are authorized after close. */
  readonly #byClient = new WeakMap<Client, Session>();
  /** Sessions whose connection is open. */
  readonly #live = new Set<Session>();
  /** Live sessions by the registry entities they depend on (`kind:key`, see dependencies()). */
  readonly #dependents = new Map<string, Set<Session>>();
  /** Live device sessions (health excluded), for maxConnections. */
  #deviceSessions = 0;
  readonly #listeners = new Set<MessageListener>();
  readonly #subscribeListeners = new Set<SubscribeListener>();
  readonly #sessionListeners = new Set<SessionListener>();
  #healthCertificateId: string | undefined;
  /** Incremented by every relevant registry commit; a CONNECT resolved across one is resolved again. */
  #generation = 0;
  #aedes: Aedes | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: EngineOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#healthCertificateId = options.healthCertificateId;
    this.#now = () => options.clock.now();
  }

  async start(): Promise<void> {
    const { limits } = this.#options;
    const backend = this.#options.backend;
    this.#aedes = await Aedes.createBroker({
      ...(backend === undefined ? {} : { id: backend.id, mq: backend.mq, persistence: backend.persistence }),
      connectTimeout: limits.connectTimeoutMs,
      // Our own limit (checked in the hooks, with a reason) is lower; Aedes' own must not refuse first.
      maxTopicLevels: 100,
      authenticate: (client, username, password, done) => {
        this.#authenticate(client, username, password).then(
          () => done(null, true),
          (error: AuthenticateError) => done(error, false),
        );
      },
      // Aedes answers a QoS1 PUBLISH with PUBACK right after this hook, before it delivers: so the
      // listeners (rules → event bus, shadows) run here, and a device's message is acknowledged
      // only once they took it. A listener's failure withholds the PUBACK and closes the session.
      authorizePublish: (client, packet, done) => {
        if (!client) return done(null);
        const refusal = this.#authorizePublish(client, packet);
        if (refusal) return done(refusal);
        this.#received(packet, client).then(
          () => done(null),
          (error: Error) => done(error),
        );
      },
      authorizeSubscribe: (client, subscription, done) =>
        done(null, this.#authorizeSubscribe(client, subscription) ? subscription : null),
      authorizeForward: (client, packet) => this.#authorizeForward(client, packet),
    });
    this.#aedes.on('clientError', (client, error) =>
      this.#log.debug({ clientId: client.id, err: error.message }, 'client error'),
    );
    this.#aedes.on('subscribe', (subscriptions, client) => {
      const session = this.#byClient.get(client);
      if (!session || session.identity.auth === 'health' || this.#subscribeListeners.size === 0) return;
      const event: SubscribeEvent = {
        clientId: session.clientId,
        topics: subscriptions.map((s) => s.topic),
        ...(session.identity.thingName === undefined ? {} : { thingName: session.identity.thingName }),
      };
      for (const listener of this.#subscribeListeners) {
        try {
          listener(event);
        } catch (error) {
          this.#log.error({ err: error }, 'subscribe listener failed');
        }
      }
    });
    this.#aedes.on('connectionError', (_client, error) =>
      this.#log.debug({ err: error.message }, 'connection error before CONNECT'),
    );
    if (this.#options.followCommits !== false) {
      this.#unsubscribe = this.#options.service.onCommit((changes) =>
        this.changed(changedDependencies(changes)),
      );
    }
  }

  /**
   * Registry entities (`kind:key`, see dependencies()) that changed: the sessions depending on
   * them are resolved again, and closed if they lost iot:Connect.
   */
  changed(dependencies: readonly string[]): void {
    for (const dependency of dependencies) {
      this.#generation++;
      for (const session of this.#dependents.get(dependency) ?? []) void this.#reresolve(session);
    }
  }

  /** The health identity's certificate, once a cluster node hears it from its hub. */
  trustHealthCertificate(certificateId: string): void {
    this.#healthCertificateId = certificateId;
  }

  /** Serves one connection: `stream` is the decrypted side of the client's socket. */
  handle(stream: Duplex, meta: ConnectionMeta): void {
    const aedes = this.#aedes;
    if (!aedes || aedes.closed) {
      stream.destroy();
      return;
    }
    const { maxPayloadBytes, maxTopicLength } = this.#options.limits;
    const guard = new PacketSizeGuard(stream, maxPayloadBytes + maxTopicLength + PACKET_OVERHEAD, (detail) =>
      this.#refused(
        detail.startsWith('malformed') ? 'malformed_packet' : 'packet_too_large',
        detail,
        meta.address,
      ),
    );
    this.#meta.set(guard, meta);
    this.#facts.set(guard, connectionFacts(stream, meta, this.#options.domainName));
    const client = aedes.handle(guard);
    guard.once('close', () => this.#drop(client));
  }

  onMessage(listener: MessageListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onSubscribe(listener: SubscribeListener): () => void {
    this.#subscribeListeners.add(listener);
    return () => this.#subscribeListeners.delete(listener);
  }

  /** Device sessions starting and ending here (the health identity's are not told). */
  onSession(listener: SessionListener): () => void {
    this.#sessionListeners.add(listener);
    return () => this.#sessionListeners.delete(listener);
  }

  /** Publishes from inside the region; each delivery still passes the subscriber's iot:Receive. */
  publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    const aedes = this.#aedes;
    if (!aedes || aedes.closed) {
      return Promise.reject(brokerClosed());
    }
    const packet: PublishPacket = {
      cmd: 'publish',
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos: options.qos ?? 0,
      retain: options.retain ?? false,
      dup: false,
    };
    return new Promise((resolve, reject) =>
      aedes.publish(packet, (error) => (error ? reject(error) : resolve())),
    );
  }

  connections(): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const s of this.#live) {
      const info = infoOf(s);
      if (info) out.push(info);
    }
    return out.sort((a, b) => a.since - b.since || a.clientId.localeCompare(b.clientId));
  }

  /** Closes the device sessions of a thing, a group's things, or all; returns how many. */
  async disconnect(target: DisconnectTarget): Promise<number> {
    let things: Set<string> | undefined;
    if ('thing' in target) things = new Set([target.thing]);
    else if ('group' in target) things = new Set(await this.#options.service.listGroupThings(target.group));
    return this.disconnectThings(things);
  }

  /** Closes the device sessions of these things (all when undefined); returns how many. */
  disconnectThings(things: ReadonlySet<string> | undefined): number {
    let count = 0;
    for (const s of [...this.#live]) {
      if (s.identity.auth === 'health') continue;
      if (things && (s.identity.thingName === undefined || !things.has(s.identity.thingName))) continue;
      count++;
      this.#options.metrics.disconnects.inc({ cause: 'request' });
      this.#log.info({ clientId: s.clientId, thing: s.identity.thingName }, 'disconnected on request');
      s.client.close();
    }
    return count;
  }

  async close(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    const aedes = this.#aedes;
    for (const s of [...this.#live]) s.client.close();
    if (aedes && !aedes.closed) await new Promise<void>((resolve) => aedes.close(() => resolve()));
  }

  get sessionCount(): number {
    return this.#deviceSessions;
  }

  async #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<void> {
    const meta = this.#meta.get(client.conn as Duplex);
    if (!meta) throw authError(5, 'unknown connection');
    const address = meta.address;
    const generation = this.#generation;
    let resolution: Resolution;
    try {
      resolution = await this.#resolve(meta, client.id, username, password);
    } catch (error) {
      this.#log.warn({ err: error, clientId: client.id, address }, 'registry read failed during CONNECT');
      throw authError(3, 'registry unavailable');
    }
    if (!resolution.ok) {
      const bad = meta.transport === 'token';
      this.#refused(bad ? 'bad_credentials' : 'not_authorized', resolution.reason, address, client.id);
      throw authError(bad ? 4 : 5, resolution.reason);
    }
    const identity = resolution.identity;
    if (identity.auth !== 'health' && this.sessionCount >= this.#options.limits.maxConnections) {
      this.#refused('max_connections', `${this.sessionCount} sessions open`, address, client.id);
      throw authError(3, 'server unavailable: too many connections');
    }
    const facts = this.#facts.get(client.conn as Duplex);
    // Aedes sets the will (its private `_will`) from the CONNECT before it authenticates.
    if (facts !== undefined)
      recordConnect(facts, client.clean, (client as { _will?: { topic?: string } })._will?.topic);
    const context = this.#contextOf(identity, client);
    const denied = connectDenied(identity, connectContext(context, facts));
    if (denied !== undefined) {
      this.#refused('connect_denied', denied, address, client.id);
      throw authError(5, denied);
    }
    const session: Session = {
      client,
      clientId: client.id,
      meta,
      identity,
      context,
      since: this.#options.clock.now(),
      revoked: false,
      resolving: false,
      again: false,
      ...(meta.transport === 'token' && username !== undefined && password !== undefined
        ? { username, password }
        : {}),
    };
    this.#byClient.set(client, session);
    if ((client.conn as Duplex).destroyed) return;
    this.#live.add(session);
    this.#index(session, true);
    if (identity.auth !== 'health') this.#deviceSessions++;
    this.#options.metrics.sessions.inc({ auth: identity.auth });
    this.#armExpiry(session);
    this.#tell(session, true);
    this.#log.debug({ clientId: client.id, address, auth: identity.auth }, 'connected');
    // A registry change committed while we read it may have been missed: read again.
    if (generation !== this.#generation) void this.#reresolve(session);
  }

  #resolve(
    meta: ConnectionMeta,
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<Resolution> {
    const { service, clock } = this.#options;
    const healthCertificateId = this.#healthCertificateId;
    if (meta.transport === 'token') {
      if (!username || !password)
        return Promise.resolve({ ok: false, reason: 'username and password required' });
      return resolveToken(service, username, password.toString('utf8'));
    }
    if (meta.certificateId === undefined) {
      return Promise.resolve({ ok: false, reason: 'no client certificate' });
    }
    if (healthCertificateId !== undefined && meta.certificateId === healthCertificateId) {
      return Promise.resolve(
        clientId.startsWith(HEALTH_CLIENT_PREFIX)
          ? { ok: true, identity: { auth: 'health' } }
          : {
              ok: false,
              reason: `the health identity must use a client id starting ${HEALTH_CLIENT_PREFIX}`,
            },
      );
    }
    return resolveCertificate(service, meta.certificateId, clock.now(), clientId);
  }

  #authorizePublish(client: Client, packet: PublishPacket): Error | null {
    const session = this.#byClient.get(client);
    if (!session || session.revoked) return new Error('not authorized');
    if (packet.topic.startsWith(CLUSTER_TOPIC_PREFIX)) {
      const detail = `iot:Publish topic/${packet.topic}: reserved for the broker's own nodes`;
      this.#refused('publish_denied', detail, session.meta.address, session.clientId);
      return new Error(detail);
    }
    const refusal = publishRefusal(session, packet, this.#options.limits, this.#options.healthTopicPrefix);
    if (refusal === undefined) return null;
    this.#refused(refusal.reason, refusal.detail, session.meta.address, session.clientId);
    // MQTT 3.1.1 has no negative PUBACK: a refused PUBLISH closes the connection, as in AWS IoT.
    return new Error(refusal.detail);
  }

  #authorizeSubscribe(client: Client, subscription: Subscription): boolean {
    const session = this.#byClient.get(client);
    if (!session || session.revoked) return false;
    const { limits, healthTopicPrefix } = this.#options;
    const refusal = subscription.topic.startsWith(CLUSTER_TOPIC_PREFIX)
      ? {
          reason: 'subscribe_denied' as const,
          detail: `iot:Subscribe topicfilter/${subscription.topic}: reserved for the broker's own nodes`,
        }
      : subscribeRefusal(session, subscription.topic, limits, healthTopicPrefix);
    if (refusal === undefined) return true;
    // [MQTT-3.9.3] a refused filter gets return code 0x80 in the SUBACK; the session stays.
    this.#refused(refusal.reason, refusal.detail, session.meta.address, session.clientId);
    return false;
  }

  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const session = this.#byClient.get(client);
    if (!session || session.revoked) return null;
    // A filter such as `$iotdr/#` must not let a client overhear the nodes' own traffic.
    if (packet.topic.startsWith(CLUSTER_TOPIC_PREFIX)) return null;
    const resource = `topic/${packet.topic}`;
    const refusal = refusalOf(
      session,
      'iot:Receive',
      resource,
      'receive_denied',
      this.#options.healthTopicPrefix,
    );
    if (refusal === undefined) return packet;
    this.#refused(refusal.reason, refusal.detail, session.meta.address, session.clientId);
    return null;
  }

  async #received(packet: PublishPacket, client: Client): Promise<void> {
    const session = this.#byClient.get(client);
    if (!session || session.identity.auth === 'health') return;
    this.#options.metrics.messages.inc();
    if (this.#listeners.size === 0) return;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const messageId = messageIdOf(payload);
    const message: InboundMessage = {
      topic: packet.topic,
      payload,
      qos: packet.qos,
      retain: packet.retain,
      clientId: session.clientId,
      ...(session.identity.thingName === undefined ? {} : { thingName: session.identity.thingName }),
      ...(messageId === undefined ? {} : { messageId }),
      receivedAt: this.#options.clock.now(),
    };
    const results = await Promise.allSettled([...this.#listeners].map(async (listener) => listener(message)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // No PUBACK: the device keeps the message and sends it again.
      this.#log.error({ err: failed.reason, topic: packet.topic }, 'message listener failed');
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
  }

  /** Reads the session's identity again after a registry change; closes it when it lost Connect. */
  async #reresolve(session: Session): Promise<void> {
    if (session.resolving) {
      session.again = true;
      return;
    }
    session.resolving = true;
    try {
      do {
        session.again = false;
        let resolution: Resolution;
        try {
          resolution = await this.#resolve(
            session.meta,
            session.clientId,
            session.username,
            session.password,
          );
        } catch (error) {
          this.#log.warn(
            { err: error, clientId: session.clientId },
            'registry read failed; session kept as it was',
          );
          return;
        }
        if (!this.#live.has(session)) return;
        const denied = resolution.ok
          ? connectDenied(
              resolution.identity,
              connectContext(
                this.#contextOf(resolution.identity, session.client),
                this.#facts.get(session.client.conn as Duplex),
              ),
            )
          : resolution.reason;
        if (denied !== undefined) {
          this.#revoke(session, denied);
          return;
        }
        if (resolution.ok) this.#update(session, resolution.identity);
      } while (session.again);
    } finally {
      session.resolving = false;
    }
  }

  #update(session: Session, identity: Identity): void {
    this.#index(session, false);
    session.identity = identity;
    this.#index(session, true);
    session.context = this.#contextOf(identity, session.client);
    this.#armExpiry(session);
  }

  /**
   * The policy context of a session: the registry's identity (identity.ts) with what the
   * connection tells (connection-facts.ts); the certificate's fields only if its policies use them.
   */
  #contextOf(identity: Identity, client: Client): PolicyContext {
    if (identity.auth === 'health') return { clientId: client.id };
    const context = policyContext(identity, client.id);
    const facts = this.#facts.get(client.conn as Duplex);
    return facts === undefined
      ? context
      : withConnection(context, facts, identity.policies.needsCertificate, this.#now);
  }

  #revoke(session: Session, reason: string): void {
    session.revoked = true;
    this.#options.metrics.disconnects.inc({ cause: 'registry' });
    this.#log.info({ clientId: session.clientId, address: session.meta.address, reason }, 'session revoked');
    session.client.close();
  }

  #armExpiry(session: Session): void {
    clearTimeout(session.expiry);
    const identity = session.identity;
    if (identity.auth !== 'mtls' || identity.notAfter === undefined) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, identity.notAfter - this.#options.clock.now()));
    session.expiry = setTimeout(() => void this.#reresolve(session), delay);
    session.expiry.unref();
  }

  #drop(client: Client): void {
    const session = this.#byClient.get(client);
    if (!session || !this.#live.delete(session)) return;
    this.#index(session, false);
    if (session.identity.auth !== 'health') this.#deviceSessions--;
    clearTimeout(session.expiry);
    this.#options.metrics.sessions.dec({ auth: session.identity.auth });
    this.#tell(session, false);
  }

  #tell(session: Session, up: boolean): void {
    if (this.#sessionListeners.size === 0) return;
    const info = infoOf(session);
    if (!info) return;
    for (const listener of this.#sessionListeners) {
      try {
        listener({ up, info });
      } catch (error) {
        this.#log.error({ err: error }, 'session listener failed');
      }
    }
  }

  #index(session: Session, add: boolean): void {
    for (const key of dependencies(session.identity)) {
      let set = this.#dependents.get(key);
      if (add) {
        if (!set) {
          set = new Set();
          this.#dependents.set(key, set);
        }
        set.add(session);
      } else if (set) {
        set.delete(session);
        if (set.size === 0) this.#dependents.delete(key);
      }
    }
  }

  #refused(reason: RefusalReason, detail: string, address: string, clientId?: string): void {
    this.#options.metrics.refusals.inc({ reason });
    // A denied delivery is the subscriber's policy working as written, possibly per message: debug.
    this.#log[reason === 'receive_denied' ? 'debug' : 'info'](
      { reason, detail, address, ...(clientId === undefined ? {} : { clientId }) },
      'refused',
    );
  }
}

/** The public view of a device session; undefined for the health identity's. */
function infoOf(s: Session): ConnectionInfo | undefined {
  if (s.identity.auth === 'health') return undefined;
  return {
    thing: s.identity.thingName ?? null,
    clientId: s.clientId,
    address: s.meta.address,
    since: s.since,
    auth: s.identity.auth,
  };
}

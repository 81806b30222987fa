import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { uuidv7 } from '../common/index.js';
import { Backoff } from './backoff.js';
import { DeviceError } from './errors.js';
import {
  type DeviceCounters,
  type DeviceEvent,
  type DeviceEventOf,
  DeviceEvents,
  type DeviceEventType,
  type DisconnectReason,
  type Endpoint,
  type MoveTrigger,
} from './events.js';
import { type DeviceClientOptions, parseDeviceOptions, type ResolvedDeviceOptions } from './options.js';
import { MessageQueue } from './queue.js';
import { type CommandHandler, DeviceRequests, type ShadowState } from './requests.js';
import { type Destination, DestinationResolver } from './resolver.js';
import {
  checkFilter,
  checkTopic,
  NOTICE_TOPIC,
  noticeSchema,
  topicMatches,
  withMessageId,
} from './topics.js';

export type MessageHandler = (topic: string, payload: Buffer) => void;

/** mqtt.js hands its options to tls.connect, `session` and `secureContext` included (its types do not list them). */
type TlsClientOptions = IClientOptions & { session?: Buffer; secureContext?: SecureContext };

/** One MQTT connection and what was sent on it. */
interface Connection {
  readonly client: MqttClient;
  readonly endpoint: Endpoint;
  readonly port: number;
  /** Whether its TLS handshake resumed an earlier session. */
  readonly resumed: boolean;
  /** Highest queue seq handed to this connection. */
  lastSent: number;
  readonly inFlight: Set<number>;
  ready: boolean;
  ended: boolean;
  /** Set when the device itself leaves (a move or close), before the socket closes. */
  leaving?: DisconnectReason;
  lastError?: Error;
}

/**
 * A failover-aware MQTT device (docs/architecture.md §6.7): resolves `mqtt.<zone>` honouring the
 * TTL, connects with SNI and certificate verification against that name, moves on the failover
 * notice, a server-side disconnect, a DNS re-check that finds another address, and its own
 * connection loss, reconnects with exponential backoff and full jitter, and keeps every accepted
 * QoS1 message in a file until the broker acknowledges it.
 */
export class DeviceClient {
  readonly options: ResolvedDeviceOptions;
  readonly #queue: MessageQueue;
  readonly #resolver: DestinationResolver;
  readonly #backoff: Backoff;
  readonly #events = new DeviceEvents();
  readonly #requests: DeviceRequests;
  readonly #counters: DeviceCounters = {
    connects: 0,
    resumed: 0,
    moves: { notice: 0, disconnect: 0, dns: 0, 'connection-lost': 0 },
    published: 0,
    acked: 0,
    retries: 0,
    resent: 0,
  };
  /** User subscriptions; internal ones (notice, commands, shadow) are added to the same map. */
  readonly #subscriptions = new Map<string, Set<MessageHandler>>();
  /**
   * The newest TLS session per kind of destination (listener kind, DR name, port), offered on
   * every reconnect: every region answers the DR name with brokers that share the ticket keys, so
   * a session made in one region resumes in the other.
   */
  readonly #tlsSessions = new Map<string, Buffer>();
  #context: SecureContext | undefined;
  #state: 'new' | 'running' | 'closed' = 'new';
  #conn: Connection | undefined;
  /** Where the device was when a move began, and what began it; cleared once connected again. */
  #move: { from: Endpoint; trigger: MoveTrigger } | undefined;
  #lastEpoch = -1;
  #highestSent = 0;
  #loop: Promise<void> | undefined;
  #attempt: MqttClient | undefined;
  #sleep: { handle: unknown; wake: () => void } | undefined;
  #recheck: unknown;
  /** The address the last connection or attempt failed on, while reconnecting; DNS is watched for another. */
  #failedAddress: string | undefined;

  constructor(options: DeviceClientOptions) {
    this.options = parseDeviceOptions(options);
    const o = this.options;
    this.#resolver = new DestinationResolver({
      name: o.host,
      ...(o.dns.servers ? { servers: o.dns.servers } : {}),
      timeoutMs: o.dns.timeoutMs,
      clock: o.clock,
      ...(o.dnsCache ? { cache: o.dnsCache } : {}),
    });
    this.#backoff = new Backoff({ ...o.backoff, random: o.random });
    this.#queue = new MessageQueue(o.queue.path, o.thingName, o.queue.maxMessages, {
      synchronous: o.queue.synchronous,
      commitIntervalMs: o.queue.commitIntervalMs,
      clock: o.clock,
      timers: o.timers,
    });
    this.#requests = new DeviceRequests({
      thingName: o.thingName,
      timers: o.timers,
      timeoutMs: o.requestTimeoutMs,
      subscribe: (filter, handler) => this.#subscribe(filter, handler),
      send: (topic, payload) => this.#sendDirect(topic, payload),
      emit: (event) => this.#events.emit(event),
    });
    if (o.followNotices) this.#subscriptions.set(NOTICE_TOPIC, new Set([(_t, p) => this.#onNotice(p)]));
  }

  /** Starts connecting (at once, then with backoff); returns immediately. Follow `on('connected')`. */
  start(): void {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    this.#runLoop(undefined);
  }

  on<T extends DeviceEventType>(type: T, listener: (event: DeviceEventOf<T>) => void): () => void {
    return this.#events.on(type, listener);
  }

  onAny(listener: (event: DeviceEvent) => void): () => void {
    return this.#events.onAny(listener);
  }

  /** A copy of the running totals. */
  get counters(): DeviceCounters {
    return { ...this.#counters, moves: { ...this.#counters.moves } };
  }

  /** Where the device is connected now, and whether its TLS session was resumed; undefined while not connected. */
  get connection(): (Endpoint & { port: number; resumed: boolean }) | undefined {
    const c = this.#conn;
    return c?.ready ? { ...c.endpoint, port: c.port, resumed: c.resumed } : undefined;
  }

  /** Accepted messages not yet acknowledged by a broker. */
  get queueDepth(): number {
    return this.#queue.depth;
  }

  /**
   * Accepts a QoS1 message: sets a new UUIDv7 as the JSON object's top-level `messageId`, writes it
   * to the queue file and resolves with the id once the write is committed (fsynced with
   * `queue.synchronous = 'full'`; the writes of one event-loop turn are committed together). It is
   * sent, in order, whenever connected, and sent again on every new connection until a PUBACK.
   * Refuses with `IOTDR_DEVICE_QUEUE_FULL` when the queue is full, `IOTDR_DEVICE_INVALID_PAYLOAD`
   * for anything but a JSON object.
   */
  async publish(
    topic: string,
    payload: Record<string, unknown> | string | Buffer,
    options: { qos?: 1 } = {},
  ): Promise<{ messageId: string }> {
    this.#assertOpen();
    if (options.qos !== undefined && options.qos !== 1)
      throw new DeviceError('IOTDR_DEVICE_INVALID_QOS', 'the device queue carries QoS 1 messages only');
    checkTopic(topic);
    const now = this.options.clock.now();
    const messageId = uuidv7(now);
    const bytes = withMessageId(payload, messageId);
    await this.#queue.append(messageId, topic, bytes, now);
    this.#counters.published++;
    this.#events.emit({ type: 'queue', depth: this.#queue.depth });
    if (this.#conn?.ready) this.#pump(this.#conn);
    return { messageId };
  }

  /**
   * Subscribes `filter` (QoS 1) now if connected and again after every (re)connect. Resolves once
   * the broker granted it (or at once while disconnected); refused → `IOTDR_DEVICE_SUBSCRIBE_REFUSED`.
   * Returns the function that removes this handler.
   */
  async subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>> {
    this.#assertOpen();
    checkFilter(filter);
    return this.#subscribe(filter, handler);
  }

  /**
   * Handles commands (`$iotdr/things/{thing}/commands`) in whichever region delivers them; a
   * repeat of a commandId is answered with the first answer, the handler runs once.
   */
  async onCommand(handler: CommandHandler): Promise<() => Promise<void>> {
    this.#assertOpen();
    return this.#requests.onCommand(handler);
  }

  /** The device's shadow as `get/accepted` gives it; `IOTDR_DEVICE_SHADOW_REJECTED` (e.g. 404) otherwise. */
  async getShadow(): Promise<Record<string, unknown>> {
    this.#assertOpen();
    return this.#requests.getShadow();
  }

  /** Updates the shadow (`update/accepted` payload back); `version` makes it conditional. */
  async updateShadow(
    state: ShadowState,
    options: { version?: number } = {},
  ): Promise<Record<string, unknown>> {
    this.#assertOpen();
    return this.#requests.updateShadow(state, options);
  }

  /** Disconnects and stops every timer; the queue file keeps what was not acknowledged. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stopRecheck();
    this.#sleep?.wake();
    this.#attempt?.end(true);
    // Ends a DNS query in flight at once instead of after its timeout.
    this.#resolver.close();
    this.#requests.close();
    const conn = this.#conn;
    if (conn) await this.#leave(conn, 'closed');
    await this.#loop;
    this.#queue.close();
    this.#events.clear();
  }

  #assertOpen(): void {
    if (this.#state === 'closed') throw new DeviceError('IOTDR_DEVICE_CLOSED', 'the device client is closed');
  }

  // --- connecting --------------------------------------------------------------------------

  /** Connects until it succeeds or the client closes; `after` (the last failure) delays the first try. */
  #runLoop(after: string | undefined): void {
    if (this.#loop || this.#state !== 'running') return;
    this.#loop = (async () => {
      let lastError = after;
      let moved = false;
      while (this.#state === 'running') {
        if (lastError !== undefined && moved) {
          // A new destination: try it now, from the first delay.
          this.#backoff.reset();
          this.#events.emit({ type: 'retry', attempt: 0, delayMs: 0, boundMs: 0, error: lastError });
        } else if (lastError !== undefined) {
          const { attempt, delayMs, boundMs } = this.#backoff.next();
          this.#events.emit({ type: 'retry', attempt, delayMs, boundMs, error: lastError });
          // The name pointing elsewhere is a new destination: try it now, from the first delay.
          if (await this.#waitWatchingDns(delayMs)) this.#backoff.reset();
          if (this.#state !== 'running') break;
        }
        try {
          await this.#connectOnce();
          break;
        } catch (error) {
          this.#counters.retries++;
          lastError = describe(error);
          moved = error instanceof NameMovedError;
        }
      }
    })().finally(() => {
      this.#loop = undefined;
    });
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        if (this.#sleep) this.options.timers.clearTimeout(this.#sleep.handle);
        this.#sleep = undefined;
        resolve();
      };
      this.#sleep = { handle: this.options.timers.setTimeout(wake, ms), wake };
    });
  }

  /**
   * Waits `ms`, asking DNS every `dns.retryMs` (the first time after a random part of it, so a fleet
   * cut off at once does not ask at once) whether the name still points at the address that failed;
   * resolves true, early, when it points elsewhere.
   */
  async #waitWatchingDns(ms: number): Promise<boolean> {
    const { clock, random } = this.options;
    const every = this.options.dns.retryMs;
    const failed = this.#failedAddress;
    if (failed === undefined || every <= 0) {
      await this.#wait(ms);
      return false;
    }
    const start = clock.now();
    const end = start + ms;
    let next = start + Math.floor(random() * every);
    while (this.#state === 'running') {
      const now = clock.now();
      if (next >= end) {
        await this.#wait(Math.max(0, end - now));
        return false;
      }
      await this.#wait(Math.max(0, next - now));
      if (this.#state !== 'running') return false;
      try {
        // The address alone; the attempt that follows asks for the whole answer again.
        if ((await this.#resolver.address()) !== failed) {
          this.#resolver.invalidate();
          return true;
        }
      } catch {
        // DNS unreachable: the backoff goes on as it would have.
      }
      next = clock.now() + every;
    }
    return false;
  }

  async #connectOnce(): Promise<void> {
    let destination: Destination;
    try {
      destination = await this.#resolver.current();
    } catch (error) {
      throw new Error(`resolving ${this.options.host}: ${describe(error)}`);
    }
    const session = this.#sessionToOffer();
    const client = mqtt.connect(this.#mqttOptions(destination, session));
    const tls = this.#watchTls(client, session !== undefined);
    this.#attempt = client;
    // Only our own listeners come off: MQTT.js listens to its own 'close' to stop its timers.
    const listeners: { connect?: () => void; error?: (e: Error) => void; close?: () => void } = {};
    let stopWatch = () => {};
    const detach = () => {
      if (listeners.connect) client.off('connect', listeners.connect);
      if (listeners.error) client.off('error', listeners.error);
      if (listeners.close) client.off('close', listeners.close);
    };
    try {
      await new Promise<void>((resolve, reject) => {
        listeners.connect = () => resolve();
        listeners.error = reject;
        listeners.close = () => reject(new Error('connection closed before CONNACK'));
        client.on('connect', listeners.connect);
        client.on('error', listeners.error);
        client.on('close', listeners.close);
        stopWatch = this.#watchAttempt(client, destination.address, reject);
      });
    } catch (error) {
      stopWatch();
      detach();
      client.on('error', () => {});
      client.end(true);
      tls.attemptFailed();
      // A refused CONNACK says the broker is there: keep the address (within its TTL). Anything
      // else may mean the address is dead, so the next attempt asks DNS again.
      if (typeof (error as { code?: unknown }).code !== 'number') this.#resolver.invalidate();
      // Only another address may cut the next wait short, refused or not.
      this.#failedAddress = destination.address;
      throw error;
    } finally {
      this.#attempt = undefined;
    }
    stopWatch();
    detach();
    if (this.#state !== 'running') {
      client.on('error', () => {});
      client.end(true);
      return;
    }
    if (destination.epoch !== undefined && destination.epoch > this.#lastEpoch)
      this.#lastEpoch = destination.epoch;
    const conn: Connection = {
      client,
      endpoint: { region: destination.region, address: destination.address },
      port: this.options.port,
      resumed: tlsSocketOf(client)?.isSessionReused() === true,
      lastSent: 0,
      inFlight: new Set(),
      ready: false,
      ended: false,
    };
    this.#conn = conn;
    client.on('error', (error) => {
      conn.lastError = error;
    });
    client.on('close', () => this.#ended(conn));
    client.on('message', (topic, payload) => this.#dispatch(topic, payload));
    this.#backoff.reset();
    this.#failedAddress = undefined;
    this.#counters.connects++;
    if (conn.resumed) this.#counters.resumed++;
    await this.#resubscribe(conn);
    // Closed while subscribing: the loop goes on (its close handler found the loop running).
    if (conn.ended) throw new Error('connection closed while subscribing');
    conn.ready = true;
    this.#events.emit({ type: 'connected', ...conn.endpoint, port: conn.port, resumed: conn.resumed });
    const move = this.#move;
    this.#move = undefined;
    if (move && (move.from.region !== conn.endpoint.region || move.from.address !== conn.endpoint.address)) {
      this.#counters.moves[move.trigger]++;
      this.#events.emit({
        type: 'moved',
        from: move.from.region,
        to: conn.endpoint.region,
        fromAddress: move.from.address,
        toAddress: conn.endpoint.address,
        trigger: move.trigger,
      });
    }
    this.#pump(conn);
    this.#requests.resend();
    this.#scheduleRecheck(conn);
  }

  /**
   * Bounds an attempt: `connectTimeoutMs` until its TCP connection is up (an address that does not
   * answer), then `handshakeTimeoutMs` to CONNACK (MQTT.js's own timeout, set to the sum), while a
   * busy broker holds it in its handshake line; meanwhile the name is re-checked every
   * `dns.recheckMs` and the wait ends at once when it points elsewhere. Returns the stop.
   */
  #watchAttempt(client: MqttClient, address: string, fail: (error: Error) => void): () => void {
    const socket = tlsSocketOf(client);
    const { connectTimeoutMs, timers, dns } = this.options;
    let stopped = false;
    let recheck: unknown;
    // Node's own timers, as MQTT.js's connect timeout: `timers` serves the backoff and DNS waits.
    const tcp = setTimeout(() => {
      fail(new Error(`connect timeout: no TCP connection within ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    const watch = () => {
      if (stopped || dns.recheckMs === 0) return;
      recheck = timers.setTimeout(async () => {
        recheck = undefined;
        let now: string | undefined;
        try {
          now = await this.#resolver.recheck();
        } catch {
          // DNS unreachable says nothing about the broker: keep waiting.
        }
        if (stopped) return;
        if (now !== undefined && now !== address) fail(new NameMovedError(address, now));
        else watch();
      }, dns.recheckMs);
    };
    const up = () => {
      clearTimeout(tcp);
      watch();
    };
    if (socket?.connecting === false) up();
    else socket?.once('connect', up);
    return () => {
      stopped = true;
      clearTimeout(tcp);
      socket?.off('connect', up);
      if (recheck !== undefined) timers.clearTimeout(recheck);
      recheck = undefined;
    };
  }

  #mqttOptions(destination: Destination, session: Buffer | undefined): TlsClientOptions {
    const o = this.options;
    const auth = o.auth;
    return {
      protocol: 'mqtts',
      host: destination.address,
      port: o.port,
      // The certificate is checked against the DR name, not the address: it holds mqtt.<zone> in
      // every region, so the name moves and verification still passes.
      servername: o.host,
      ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress }),
      secureContext: this.#secureContext(),
      ...(auth.type === 'mtls' ? {} : { username: o.thingName, password: auth.token }),
      rejectUnauthorized: true,
      // A broker that does not know the session's ticket key makes a full handshake instead.
      ...(session === undefined ? {} : { session }),
      clientId: o.thingName,
      protocolVersion: 4,
      clean: true,
      keepalive: o.keepaliveSeconds,
      connectTimeout: o.connectTimeoutMs + o.handshakeTimeoutMs,
      // The client drives reconnection itself: re-resolving, backoff with jitter, recording why.
      reconnectPeriod: 0,
    };
  }

  /**
   * The CA, certificate and key as one TLS context, made once and shared by every connection: made
   * per connection (what tls.connect does with PEM options) it parsed the key and the CA again on
   * each connect, an eighth of a simulated fleet's CPU in a reconnect (docs/benchmarks.md).
   */
  #secureContext(): SecureContext {
    if (this.#context === undefined) {
      const auth = this.options.auth;
      this.#context = createSecureContext({
        ca: auth.caPem,
        ...(auth.type === 'mtls' ? { cert: auth.certPem, key: auth.keyPem } : {}),
      });
    }
    return this.#context;
  }

  /** Which kept TLS session a connection offers: one per listener kind, DR name and port. */
  #sessionKey(): string {
    const o = this.options;
    return `${o.auth.type} ${o.host}:${o.port}`;
  }

  /** The kept TLS session the next connection offers, if any. */
  #sessionToOffer(): Buffer | undefined {
    return this.options.tlsResumption ? this.#tlsSessions.get(this.#sessionKey()) : undefined;
  }

  /**
   * Keeps the sessions the broker gives this connection: TLS 1.3 sends them after the handshake
   * (Node's server two, and one after a resumption), and the newest is kept. `attemptFailed`, for
   * an attempt that ended before CONNACK: when a session was offered and TLS itself failed (an
   * alert, an OpenSSL error), the session is dropped, so a server that fails the handshake when
   * offered a session (OpenSSL does when it asks for client certificates without a session id
   * context, as iotdr's broker did before resumption) gets a full handshake next time, not the
   * same failure forever. An unreachable, slow or overloaded broker (refused, reset, timed out)
   * keeps it: a storm is when a resumed handshake saves the broker the most.
   */
  #watchTls(client: MqttClient, offered: boolean): { attemptFailed(): void } {
    const socket = tlsSocketOf(client);
    if (!this.options.tlsResumption || socket === undefined) return { attemptFailed: () => {} };
    const key = this.#sessionKey();
    let tlsFailed = false;
    socket.on('session', (session: Buffer) => this.#tlsSessions.set(key, session));
    socket.once('error', (error) => {
      tlsFailed = isTlsFailure(error);
    });
    return {
      attemptFailed: () => {
        if (offered && tlsFailed) this.#tlsSessions.delete(key);
      },
    };
  }

  async #resubscribe(conn: Connection): Promise<void> {
    const filters = [...this.#subscriptions.keys()];
    if (filters.length === 0) return;
    try {
      await conn.client.subscribeAsync(
        Object.fromEntries(filters.map((topic) => [topic, { qos: 1 as const }])),
      );
    } catch {
      // The connection ended while subscribing: its close handler reconnects.
    }
  }

  // --- leaving -----------------------------------------------------------------------------

  /** The device leaves a connection on its own (a move signal or close). */
  async #leave(conn: Connection, reason: DisconnectReason): Promise<void> {
    if (conn.ended) return;
    conn.leaving ??= reason;
    await new Promise<void>((resolve) => {
      conn.client.end(true, {}, () => resolve());
    });
    this.#ended(conn);
  }

  /** A connection is over, whoever ended it: record why and reconnect unless closed. */
  #ended(conn: Connection): void {
    if (conn.ended) return;
    conn.ended = true;
    conn.ready = false;
    conn.client.removeAllListeners('message');
    conn.client.on('error', () => {});
    if (this.#conn === conn) this.#conn = undefined;
    this.#stopRecheck();
    // MQTT 3.1.1 has no DISCONNECT from the server: a clean close by the server is its
    // disconnect; an error, reset or keepalive timeout is a lost connection.
    const reason: DisconnectReason = conn.leaving ?? (conn.lastError ? 'connection-lost' : 'disconnect');
    this.#events.emit({
      type: 'disconnected',
      reason,
      ...conn.endpoint,
      ...(conn.lastError ? { error: conn.lastError.message } : {}),
    });
    if (reason === 'closed' || this.#state !== 'running') return;
    this.#move ??= { from: conn.endpoint, trigger: reason };
    this.#resolver.invalidate();
    // A move signal says where to go already; a loss or a server's disconnect may be the region going.
    if (reason === 'connection-lost' || reason === 'disconnect') this.#failedAddress = conn.endpoint.address;
    this.#runLoop(conn.lastError ? describe(conn.lastError) : reason);
  }

  // --- signals -----------------------------------------------------------------------------

  #onNotice(payload: Buffer): void {
    let notice: { activeRegion: string; epoch: number };
    try {
      notice = noticeSchema.parse(JSON.parse(payload.toString()));
    } catch {
      return; // Not a notice iotdr wrote; nothing to act on.
    }
    const conn = this.#conn;
    const fresh = notice.epoch > this.#lastEpoch;
    if (fresh) this.#lastEpoch = notice.epoch;
    const acted = fresh && conn !== undefined && notice.activeRegion !== conn.endpoint.region;
    this.#events.emit({ type: 'notice', activeRegion: notice.activeRegion, epoch: notice.epoch, acted });
    if (acted && conn) void this.#leave(conn, 'notice');
  }

  #scheduleRecheck(conn: Connection): void {
    const every = this.options.dns.recheckMs;
    if (every === 0) return;
    this.#stopRecheck();
    this.#recheck = this.options.timers.setTimeout(async () => {
      this.#recheck = undefined;
      let address: string | undefined;
      try {
        // The address alone: the TXT record's region matters only to a connect, and every connect
        // after a move asks for the whole answer again. Half the queries of a fleet at rest.
        address = await this.#resolver.recheck();
      } catch {
        // DNS unreachable or failing says nothing about the broker: keep the connection.
      }
      if (conn.ended || this.#state !== 'running') return;
      if (address !== undefined && address !== conn.endpoint.address) void this.#leave(conn, 'dns');
      else this.#scheduleRecheck(conn);
    }, every);
  }

  #stopRecheck(): void {
    if (this.#recheck !== undefined) this.options.timers.clearTimeout(this.#recheck);
    this.#recheck = undefined;
  }

  // --- messages ----------------------------------------------------------------------------

  /** Sends queued messages in order, at most `maxInFlight` unacknowledged at a time. */
  #pump(conn: Connection): void {
    const room = this.options.queue.maxInFlight - conn.inFlight.size;
    if (!conn.ready || conn.ended || room <= 0) return;
    for (const m of this.#queue.after(conn.lastSent, room)) {
      conn.lastSent = m.seq;
      conn.inFlight.add(m.seq);
      if (m.seq <= this.#highestSent) this.#counters.resent++;
      else this.#highestSent = m.seq;
      conn.client.publish(m.topic, m.payload, { qos: 1 }, (error) => {
        // An error here is the connection ending: the message stays queued for the next one.
        if (error || conn.ended || this.#state === 'closed') return;
        conn.inFlight.delete(m.seq);
        this.#queue.remove(m.seq);
        this.#counters.acked++;
        this.#events.emit({ type: 'queue', depth: this.#queue.depth });
        this.#pump(conn);
      });
    }
  }

  /** Publishes on the live connection, not queued (command replies, shadow requests). */
  #sendDirect(topic: string, payload: string): boolean {
    const conn = this.#conn;
    if (!conn?.ready) return false;
    conn.client.publish(topic, payload, { qos: 1 }, () => {});
    return true;
  }

  async #subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>> {
    let handlers = this.#subscriptions.get(filter);
    const isNew = handlers === undefined;
    if (!handlers) {
      handlers = new Set();
      this.#subscriptions.set(filter, handlers);
    }
    handlers.add(handler);
    const remove = async () => {
      const set = this.#subscriptions.get(filter);
      if (!set?.delete(handler) || set.size > 0) return;
      this.#subscriptions.delete(filter);
      const conn = this.#conn;
      if (conn?.ready) await conn.client.unsubscribeAsync(filter).catch(() => {});
    };
    const conn = this.#conn;
    if (isNew && conn?.ready) {
      // MQTT.js rejects a SUBACK failure (0x80, §3.9.3) with the SUBACK attached; any other error
      // is the connection ending, and the subscription is made on the next one.
      const refused = await conn.client.subscribeAsync(filter, { qos: 1 }).then(
        (granted) => granted.some((g) => (g.qos & 0x80) !== 0),
        (error: { packet?: { granted?: unknown[] } }) =>
          error.packet?.granted?.some((g) => typeof g === 'number' && (g & 0x80) !== 0) === true,
      );
      if (refused) {
        await remove();
        throw new DeviceError(
          'IOTDR_DEVICE_SUBSCRIBE_REFUSED',
          `the broker refused the subscription ${filter}`,
          {
            status: 403,
            details: { filter },
          },
        );
      }
    }
    return remove;
  }

  #dispatch(topic: string, payload: Buffer): void {
    for (const [filter, handlers] of this.#subscriptions) {
      if (!topicMatches(filter, topic)) continue;
      for (const h of handlers) {
        try {
          h(topic, payload);
        } catch {
          // A handler's bug must not take the connection down.
        }
      }
    }
  }
}

/** The TLS socket under an mqtt.js client (made synchronously by mqtt.connect for mqtts). */
function tlsSocketOf(client: MqttClient): TLSSocket | undefined {
  const stream: unknown = client.stream;
  return stream instanceof TLSSocket ? stream : undefined;
}

/**
 * Whether an error of a TLS socket is TLS failing (an alert, an OpenSSL error) rather than the
 * network: OpenSSL's errors carry an ERR_SSL_ code, or EPROTO when they surface on a write.
 */
function isTlsFailure(error: Error & { code?: unknown }): boolean {
  return typeof error.code === 'string' && (error.code === 'EPROTO' || error.code.startsWith('ERR_SSL_'));
}

/** The name pointed elsewhere while an attempt waited for its CONNACK: try the new address now. */
class NameMovedError extends Error {
  constructor(from: string, to: string) {
    super(`the name moved from ${from} to ${to} before CONNACK`);
    this.name = 'NameMovedError';
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return code === undefined ? error.message : `${error.message} (${String(code)})`;
  }
  return String(error);
}

/**
 * The link between a region's hub (the process with the registry, API, shadows, rules and health)
 * and its broker nodes (workers on every core, and hosts behind one address), carried on the
 * nodes' shared emitter (Redis pub/sub, cluster.ts). Messages are PUBLISH packets under
 * CLUSTER_TOPIC_PREFIX with a JSON payload, which no client may publish, subscribe to or receive.
 *
 * - Every node tells the hub of each device session that starts or ends, and counts its sessions
 *   in a heartbeat; the hub keeps the region's table of sessions from that (connections, the
 *   command dispatcher's "is it connected"), asks a node whose count disagrees for its full list,
 *   and forgets a node that stopped beating.
 * - A device's PUBLISH is handed to the hub's listeners (shadows, rules → event bus) and the node
 *   sends the PUBACK only once the hub acknowledged it, as in one process. A node with a `local`
 *   handler (the bus appends, on JetStream) runs it first and hands over only what it says the hub
 *   still needs, marked `busHandled`.
 * - The hub tells every node of registry changes (revocation, policies) and of disconnects.
 * Pub/sub loses what is sent while a link is down: a lost acknowledgement withholds a PUBACK (the
 * device sends again), a lost session event is mended by the next heartbeat.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from '../common/index.js';
import type { EmittedMessage, Emitter } from './cluster.js';
import {
  type BrokerEngine,
  CLUSTER_TOPIC_PREFIX,
  type InboundMessage,
  type MessageListener,
  type SubscribeEvent,
  type SubscribeListener,
} from './engine.js';
import { noHub } from './errors.js';
import type { ConnectionInfo } from './session.js';

/** How often the hub and every node say they are there, in ms. */
export const HEARTBEAT_MS = 1_000;
/** How long the hub waits for every node to say how many sessions a disconnect closed, in ms. */
export const DISCONNECT_WAIT_MS = 2_000;
/** A node not heard for this long is gone, with its sessions, in ms. */
export const NODE_EXPIRY_MS = 3_500;
/** How long a node waits for the hub to take a device's message before it withholds the PUBACK, in ms. */
export const INBOUND_TIMEOUT_MS = 10_000;

const TOPIC = {
  hub: `${CLUSTER_TOPIC_PREFIX}hub`,
  node: `${CLUSTER_TOPIC_PREFIX}node`,
  session: `${CLUSTER_TOPIC_PREFIX}session`,
  sessions: `${CLUSTER_TOPIC_PREFIX}sessions`,
  inbound: `${CLUSTER_TOPIC_PREFIX}inbound`,
  subscribed: `${CLUSTER_TOPIC_PREFIX}subscribed`,
  registry: `${CLUSTER_TOPIC_PREFIX}registry`,
  disconnect: `${CLUSTER_TOPIC_PREFIX}disconnect`,
  disconnected: `${CLUSTER_TOPIC_PREFIX}disconnected`,
  sync: `${CLUSTER_TOPIC_PREFIX}sync`,
  ack: (node: string) => `${CLUSTER_TOPIC_PREFIX}ack/${node}`,
} as const;

const nodeId = z.string().min(1).max(200);
const connectionInfo = z.object({
  thing: z.string().nullable(),
  clientId: z.string(),
  address: z.string(),
  since: z.number(),
  auth: z.enum(['mtls', 'token']),
});
const schemas = {
  hub: z.object({ hub: z.string(), healthCertificateId: z.string() }),
  node: z.object({ node: nodeId, sessions: z.number().int().nonnegative() }),
  session: z.object({ node: nodeId, up: z.boolean(), info: connectionInfo }),
  sessions: z.object({ node: nodeId, sessions: z.array(connectionInfo) }),
  inbound: z.object({
    node: nodeId,
    id: z.string(),
    message: z.object({
      topic: z.string(),
      payload: z.string().describe('base64'),
      qos: z.union([z.literal(0), z.literal(1), z.literal(2)]),
      retain: z.boolean(),
      clientId: z.string(),
      thingName: z.string().optional(),
      messageId: z.string().optional(),
      receivedAt: z.number(),
      busHandled: z.object({ eventId: z.string().optional() }).optional(),
    }),
  }),
  ack: z.object({ id: z.string(), error: z.string().optional() }),
  subscribed: z.object({
    clientId: z.string(),
    thingName: z.string().optional(),
    topics: z.array(z.string()),
  }),
  registry: z.object({ dependencies: z.array(z.string()) }),
  disconnect: z.object({ id: z.string(), things: z.array(z.string()).optional() }),
  disconnected: z.object({ id: z.string(), node: nodeId, count: z.number().int().nonnegative() }),
  sync: z.object({ node: nodeId.optional() }),
};

type Parsed<K extends keyof typeof schemas> = z.infer<(typeof schemas)[K]>;

/** Sends one link message: a QoS 0 PUBLISH packet, as Aedes' own emitter traffic is. */
function send(mq: Emitter, topic: string, body: unknown): void {
  mq.emit({
    cmd: 'publish',
    topic,
    payload: Buffer.from(JSON.stringify(body)),
    qos: 0,
    retain: false,
    dup: false,
  });
}

/** Reads one link message; undefined (logged) when it is not what the topic carries. */
function read<K extends keyof typeof schemas>(
  kind: K,
  message: EmittedMessage,
  log: Logger,
): Parsed<K> | undefined {
  try {
    const payload = message.payload;
    const text = Buffer.isBuffer(payload)
      ? payload.toString('utf8')
      : payload instanceof Uint8Array
        ? Buffer.from(payload).toString('utf8')
        : String(payload);
    return schemas[kind].parse(JSON.parse(text)) as Parsed<K>;
  } catch (error) {
    log.warn({ topic: message.topic, err: (error as Error).message }, 'unreadable cluster message ignored');
    return undefined;
  }
}

/** Subscribes on the emitter; resolves once the subscription is in place. Returns the remover. */
async function listen(
  mq: Emitter,
  topic: string,
  handler: (message: EmittedMessage) => void,
): Promise<() => void> {
  const listener = (message: EmittedMessage, done: () => void): void => {
    try {
      handler(message);
    } finally {
      done();
    }
  };
  await new Promise<void>((resolve) => mq.on(topic, listener, resolve));
  return () => mq.removeListener(topic, listener);
}

interface NodeView {
  lastSeen: number;
  sessions: Map<string, ConnectionInfo>;
}

export interface HubLinkOptions {
  mq: Emitter;
  /** The health identity every node must admit. */
  healthCertificateId: string;
  logger: Logger;
  now?: () => number;
}

/**
 * The hub's end: the region's table of sessions, device messages for the hub's listeners,
 * registry changes and disconnects out to every node.
 */
export class HubLink {
  readonly #options: HubLinkOptions;
  readonly #id = randomUUID();
  readonly #now: () => number;
  readonly #nodes = new Map<string, NodeView>();
  readonly #messageListeners = new Set<MessageListener>();
  readonly #subscribeListeners = new Set<SubscribeListener>();
  readonly #stops: Array<() => void> = [];
  /** Disconnects waiting for the nodes' counts, by request id. */
  readonly #counting = new Map<string, { waiting: Set<string>; count: number; done(): void }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: HubLinkOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    const { mq, logger: log } = this.#options;
    this.#stops.push(
      await listen(mq, TOPIC.node, (m) => {
        const beat = read('node', m, log);
        if (beat) this.#beat(beat);
      }),
      await listen(mq, TOPIC.session, (m) => {
        const event = read('session', m, log);
        if (!event) return;
        const view = this.#view(event.node);
        if (event.up) view.sessions.set(event.info.clientId, { ...event.info, node: event.node });
        else if (view.sessions.get(event.info.clientId)?.since === event.info.since)
          view.sessions.delete(event.info.clientId);
      }),
      await listen(mq, TOPIC.sessions, (m) => {
        const list = read('sessions', m, log);
        if (!list) return;
        const view = this.#view(list.node);
        view.sessions = new Map(list.sessions.map((s) => [s.clientId, { ...s, node: list.node }]));
      }),
      await listen(mq, TOPIC.inbound, (m) => {
        const inbound = read('inbound', m, log);
        if (inbound) void this.#inbound(inbound);
      }),
      await listen(mq, TOPIC.disconnected, (m) => {
        const reply = read('disconnected', m, log);
        if (reply === undefined) return;
        const counting = this.#counting.get(reply.id);
        if (counting === undefined || !counting.waiting.delete(reply.node)) return;
        counting.count += reply.count;
        if (counting.waiting.size === 0) counting.done();
      }),
      await listen(mq, TOPIC.subscribed, (m) => {
        const event = read('subscribed', m, log);
        if (!event) return;
        const out: SubscribeEvent = {
          clientId: event.clientId,
          topics: event.topics,
          ...(event.thingName === undefined ? {} : { thingName: event.thingName }),
        };
        for (const listener of this.#subscribeListeners) {
          try {
            listener(out);
          } catch (error) {
            log.error({ err: error }, 'subscribe listener failed');
          }
        }
      }),
    );
    this.#announce();
    this.#timer = setInterval(() => {
      this.#announce();
      this.#expire();
    }, HEARTBEAT_MS);
    this.#timer.unref();
  }

  onMessage(listener: MessageListener): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  onSubscribe(listener: SubscribeListener): () => void {
    this.#subscribeListeners.add(listener);
    return () => this.#subscribeListeners.delete(listener);
  }

  /** Every node's live device sessions, oldest first. */
  connections(): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const view of this.#nodes.values()) out.push(...view.sessions.values());
    return out.sort((a, b) => a.since - b.since || a.clientId.localeCompare(b.clientId));
  }

  isConnected(thingName: string): boolean {
    for (const view of this.#nodes.values())
      for (const s of view.sessions.values()) if (s.thing === thingName) return true;
    return false;
  }

  /** Nodes heard within NODE_EXPIRY_MS. */
  nodes(): string[] {
    return [...this.#nodes.keys()].sort();
  }

  /**
   * Tells every node to close the sessions of these things (all when undefined); resolves with how
   * many they closed, once every node heard answered or DISCONNECT_WAIT_MS passed.
   */
  async disconnect(things: ReadonlySet<string> | undefined): Promise<number> {
    const id = randomUUID();
    const waiting = new Set(this.#nodes.keys());
    let timer: NodeJS.Timeout | undefined;
    const counting = { waiting, count: 0, done: () => {} };
    const answered = new Promise<void>((resolve) => {
      counting.done = resolve;
      timer = setTimeout(resolve, DISCONNECT_WAIT_MS);
    });
    this.#counting.set(id, counting);
    try {
      send(this.#options.mq, TOPIC.disconnect, things === undefined ? { id } : { id, things: [...things] });
      if (waiting.size > 0) await answered;
      if (waiting.size > 0)
        this.#options.logger.warn({ nodes: [...waiting] }, 'nodes did not say what the disconnect closed');
      return counting.count;
    } finally {
      clearTimeout(timer);
      this.#counting.delete(id);
    }
  }

  /** Tells every node that these registry entities changed. */
  changed(dependencies: readonly string[]): void {
    if (dependencies.length > 0) send(this.#options.mq, TOPIC.registry, { dependencies });
  }

  close(): void {
    clearInterval(this.#timer);
    for (const stop of this.#stops.splice(0)) stop();
  }

  #announce(): void {
    send(this.#options.mq, TOPIC.hub, {
      hub: this.#id,
      healthCertificateId: this.#options.healthCertificateId,
    });
  }

  #view(node: string): NodeView {
    let view = this.#nodes.get(node);
    if (!view) {
      view = { lastSeen: this.#now(), sessions: new Map() };
      this.#nodes.set(node, view);
    }
    return view;
  }

  #beat(beat: Parsed<'node'>): void {
    const known = this.#nodes.has(beat.node);
    const view = this.#view(beat.node);
    view.lastSeen = this.#now();
    // A session event lost on the way (or a hub started after the node): ask for the full list.
    if (!known || view.sessions.size !== beat.sessions)
      send(this.#options.mq, TOPIC.sync, { node: beat.node });
  }

  #expire(): void {
    const before = this.#now() - NODE_EXPIRY_MS;
    for (const [node, view] of this.#nodes) {
      if (view.lastSeen >= before) continue;
      this.#nodes.delete(node);
      this.#options.logger.warn(
        { node, sessions: view.sessions.size },
        'broker node stopped answering; its sessions are forgotten',
      );
    }
  }

  async #inbound(inbound: Parsed<'inbound'>): Promise<void> {
    const m = inbound.message;
    const message: InboundMessage = {
      topic: m.topic,
      payload: Buffer.from(m.payload, 'base64'),
      qos: m.qos,
      retain: m.retain,
      clientId: m.clientId,
      ...(m.thingName === undefined ? {} : { thingName: m.thingName }),
      ...(m.messageId === undefined ? {} : { messageId: m.messageId }),
      receivedAt: m.receivedAt,
      ...(m.busHandled === undefined ? {} : { busHandled: busHandled(m.busHandled.eventId) }),
    };
    let error: string | undefined;
    try {
      await this.take(message);
    } catch (failure) {
      error = (failure as Error).message;
    }
    send(
      this.#options.mq,
      TOPIC.ack(inbound.node),
      error === undefined ? { id: inbound.id } : { id: inbound.id, error },
    );
  }

  /** Hands a device's message to the hub's listeners; rejects with the first failure. */
  async take(message: InboundMessage): Promise<void> {
    const results = await Promise.allSettled([...this.#messageListeners].map(async (l) => l(message)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined)
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }
}

/** What a node did with a device's message before the hub: whether the hub must take it too. */
export interface LocalOutcome {
  /** The hub's listeners still have work: a shadow request, a rule's republish or HTTP action. */
  toHub: boolean;
  /** The id the node gave the message's events, for the hub's actions. */
  eventId?: string;
}

/**
 * A node's own part of a device's message (the rules' bus appends on JetStream). It resolves once
 * that part is done (the PUBACK waits for it); a rejection withholds the PUBACK.
 */
export type LocalHandler = (message: InboundMessage) => Promise<LocalOutcome>;

function busHandled(eventId: string | undefined): { eventId?: string } {
  return eventId === undefined ? {} : { eventId };
}

export interface NodeLinkOptions {
  mq: Emitter;
  /** The hub, when it runs in this process: device messages go to it directly, not through Redis. */
  hub?: HubLink;
  /** Runs first on every device message; only what it sends on reaches the hub. Default: all of it. */
  local?: LocalHandler;
  /** This node's id (unique in the region; the engine backend's). */
  node: string;
  engine: BrokerEngine;
  logger: Logger;
}

interface Pending {
  resolve(): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** A broker node's end: tells the hub of sessions and messages, and follows what the hub says. */
export class NodeLink {
  readonly #options: NodeLinkOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #stops: Array<() => void> = [];
  #hub: string | undefined;
  #heardHub: (() => void) | undefined;
  readonly #hubHeard: Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #sequence = 0;

  constructor(options: NodeLinkOptions) {
    this.#options = options;
    this.#hubHeard = new Promise((resolve) => {
      this.#heardHub = resolve;
    });
  }

  async start(): Promise<void> {
    const { mq, engine, node, logger: log } = this.#options;
    this.#stops.push(
      await listen(mq, TOPIC.hub, (m) => {
        const hub = read('hub', m, log);
        if (!hub) return;
        engine.trustHealthCertificate(hub.healthCertificateId);
        if (this.#hub !== hub.hub) {
          if (this.#hub !== undefined) log.info({ hub: hub.hub }, 'a new hub took over');
          this.#hub = hub.hub;
          this.#sendSessions();
        }
        this.#heardHub?.();
      }),
      await listen(mq, TOPIC.ack(node), (m) => {
        const ack = read('ack', m, log);
        const pending = ack === undefined ? undefined : this.#pending.get(ack.id);
        if (!ack || !pending) return;
        this.#pending.delete(ack.id);
        clearTimeout(pending.timer);
        if (ack.error === undefined) pending.resolve();
        else pending.reject(new Error(`the hub did not take the message: ${ack.error}`));
      }),
      await listen(mq, TOPIC.registry, (m) => {
        const changes = read('registry', m, log);
        if (changes) engine.changed(changes.dependencies);
      }),
      await listen(mq, TOPIC.disconnect, (m) => {
        const target = read('disconnect', m, log);
        if (!target) return;
        const count = engine.disconnectThings(
          target.things === undefined ? undefined : new Set(target.things),
        );
        send(mq, TOPIC.disconnected, { id: target.id, node, count });
      }),
      await listen(mq, TOPIC.sync, (m) => {
        const sync = read('sync', m, log);
        if (sync && (sync.node === undefined || sync.node === node)) this.#sendSessions();
      }),
      engine.onSession((event) => send(mq, TOPIC.session, { node, up: event.up, info: event.info })),
      engine.onSubscribe((event) => send(mq, TOPIC.subscribed, event)),
      engine.onMessage((message) => this.#take(message)),
    );
  }

  /** Starts the heartbeat: the hub counts this node from now on. Call once it listens. */
  serving(): void {
    if (this.#timer !== undefined) return;
    this.#beat();
    this.#timer = setInterval(() => this.#beat(), HEARTBEAT_MS);
    this.#timer.unref();
  }

  /** Resolves once the hub was heard (the health identity is known then); rejects after `ms`. */
  async hubHeard(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#hubHeard,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(noHub(ms)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    for (const stop of this.#stops.splice(0)) stop();
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error('the broker node is closing'));
      this.#pending.delete(id);
    }
  }

  #beat(): void {
    send(this.#options.mq, TOPIC.node, {
      node: this.#options.node,
      sessions: this.#options.engine.connections().length,
    });
  }

  #sendSessions(): void {
    send(this.#options.mq, TOPIC.sessions, {
      node: this.#options.node,
      sessions: this.#options.engine.connections(),
    });
  }

  /** Runs the node's own part, then hands the message to the hub when the hub still has work. */
  async #take(message: InboundMessage): Promise<void> {
    const local = this.#options.local;
    if (local === undefined) return this.#handOver(message);
    const outcome = await local(message);
    if (outcome.toHub) await this.#handOver({ ...message, busHandled: busHandled(outcome.eventId) });
  }

  /** Hands a device's message to the hub; resolves when the hub's listeners took it. */
  #handOver(message: InboundMessage): Promise<void> {
    const hub = this.#options.hub;
    if (hub !== undefined) return hub.take(message);
    const id = `${this.#options.node}:${++this.#sequence}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the hub did not acknowledge the message within ${INBOUND_TIMEOUT_MS} ms`));
      }, INBOUND_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      send(this.#options.mq, TOPIC.inbound, {
        node: this.#options.node,
        id,
        message: {
          topic: message.topic,
          payload: message.payload.toString('base64'),
          qos: message.qos,
          retain: message.retain,
          clientId: message.clientId,
          ...(message.thingName === undefined ? {} : { thingName: message.thingName }),
          ...(message.messageId === undefined ? {} : { messageId: message.messageId }),
          receivedAt: message.receivedAt,
          ...(message.busHandled === undefined ? {} : { busHandled: message.busHandled }),
        },
      });
    });
  }
}

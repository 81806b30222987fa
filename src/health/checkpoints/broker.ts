import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import { z } from 'zod';
import { type Clock, systemClock } from '../../common/index.js';
import { DEFAULT_CONNECT_EVERY_MS, DEFAULT_CONNECT_TIMEOUT_MS } from '../config.js';
import { InvalidCheckpointError } from '../errors.js';
import type { Checkpoint, CheckpointOptions, ProbeContext, ProbeResult } from '../types.js';

/** What the broker gives the health checkpoint (broker.healthIdentity()). */
export interface BrokerHealthIdentity {
  /** The region's own TLS listener, `mqtts://host:port`. */
  url: string;
  certPem: string;
  keyPem: string;
  /** The CA that signed the broker's server certificate. */
  caPem: string;
  /** Name the server certificate is verified against (SNI too). */
  servername: string;
  /** Topics the identity may publish and subscribe under; each session uses a fresh one below it. */
  topicPrefix: string;
  /** The local address to connect from (the broker exempts its own from the per-address limit). */
  localAddress?: string;
}

/** Every probe's client id starts with this (the broker recognises the health identity by it). */
export const HEALTH_CLIENT_ID_PREFIX = 'iotdr-health-';

/**
 * MQTT keep-alive of the kept session, in s: a connection the broker lost without closing it is
 * found within 1.5 × this by mqtt.js, and the next probe connects again.
 */
const SESSION_KEEPALIVE_S = 10;

const pem = (label: string) =>
  z.string().regex(new RegExp(`-----BEGIN [A-Z ]*${label}-----`), `a PEM ${label.toLowerCase()}`);
const identitySchema = z.object({
  url: z.string().refine((u) => {
    try {
      return /^mqtts:\/\/[^/?#@\s]+:\d{1,5}\/?$/.test(u) && new URL(u).protocol === 'mqtts:';
    } catch {
      return false;
    }
  }, 'mqtts://host:port'),
  certPem: pem('CERTIFICATE'),
  keyPem: pem('PRIVATE KEY'),
  caPem: pem('CERTIFICATE'),
  servername: z.string().min(1).max(253),
  topicPrefix: z
    .string()
    .min(1)
    .max(200)
    .refine((t) => !t.includes('#') && !t.includes('+') && !t.includes('\0'), 'a topic without wildcards'),
  localAddress: z.union([z.ipv4(), z.ipv6()]).optional(),
});

type IdentitySource = BrokerHealthIdentity | (() => BrokerHealthIdentity | Promise<BrokerHealthIdentity>);

export interface BrokerCheckpointOptions extends CheckpointOptions {
  /** Measures the round trip; default the system clock. */
  clock?: Clock;
}

export interface BrokerConnectCheckpointOptions extends BrokerCheckpointOptions {
  /** Connects at most this often while it passes, in ms; after a failure at every request. Default 30,000. */
  everyMs?: number;
}

/**
 * `broker:roundTrip`: a real MQTT round trip through the region's own TLS listener, over one
 * session kept open between probes. Each probe publishes a fresh random nonce with QoS 1 on the
 * session's topic (fresh and random per session, under the identity's prefix) and passes only
 * when that very message comes back through the broker. A probe therefore costs a PUBLISH, a
 * PUBACK and a delivery, not a mutual-TLS handshake: a broker absorbing a reconnect storm at its
 * full handshake rate still answers it on time, while a broker that stops routing, closes, or is
 * gone fails it at once (a closed session is opened again by the next probe, which then fails
 * with the connection's error). observedValue: publish to receipt, plus the connect when the
 * probe had to open the session, in ms. The fresh connect is `brokerConnectCheckpoint`'s job.
 *
 * `identity` may be a function, so a rotated health certificate is picked up by the next session.
 */
export function brokerCheckpoint(
  identity: IdentitySource,
  options: BrokerCheckpointOptions = {},
): Checkpoint {
  const clock = options.clock ?? systemClock;
  if (typeof identity !== 'function') parseIdentity(identity);
  const session = new HealthSession(identity, clock);
  return {
    name: options.name ?? 'broker',
    component: 'broker',
    measurement: 'roundTrip',
    componentType: 'component',
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.critical === undefined ? {} : { critical: options.critical }),
    probe: (context) => session.roundTrip(context),
    close: () => session.close(),
  };
}

/**
 * `broker:connect`: what a device pays to come in — a new TCP connection, a full mutual-TLS
 * handshake and CONNECT → CONNACK with a fresh client id, then DISCONNECT. It runs in the
 * background at most every `everyMs` while it passes (after a failure, at every request), under
 * its own timeout, and requests answer its latest result with the time it was observed: a fresh
 * handshake queued behind a storm never delays the region's answer.
 */
export function brokerConnectCheckpoint(
  identity: IdentitySource,
  options: BrokerConnectCheckpointOptions = {},
): Checkpoint {
  const clock = options.clock ?? systemClock;
  if (typeof identity !== 'function') parseIdentity(identity);
  return {
    name: options.name ?? 'broker-connect',
    component: 'broker',
    measurement: 'connect',
    componentType: 'component',
    timeoutMs: options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    everyMs: options.everyMs ?? DEFAULT_CONNECT_EVERY_MS,
    ...(options.critical === undefined ? {} : { critical: options.critical }),
    async probe(context) {
      const started = clock.now();
      const client = await open(await resolve(identity), context);
      client.end(true);
      return { status: 'pass', observedValue: Math.max(0, clock.now() - started), observedUnit: 'ms' };
    },
  };
}

async function resolve(identity: IdentitySource): Promise<BrokerHealthIdentity> {
  return parseIdentity(typeof identity === 'function' ? await identity() : identity);
}

function parseIdentity(identity: BrokerHealthIdentity): BrokerHealthIdentity {
  const parsed = identitySchema.safeParse(identity);
  if (!parsed.success) throw new InvalidCheckpointError('broker health identity', parsed.error.issues);
  return parsed.data;
}

/** A connected health session and the topic it is subscribed to. */
interface Session {
  client: MqttClient;
  topic: string;
  /** Rejects when the connection errs or closes; never resolves. */
  broken: Promise<never>;
}

/**
 * The broker checkpoint's MQTT session: opened by the first probe, kept while the connection
 * lives, opened again by the next probe once it is gone. The checkpoint runner never overlaps two
 * runs of a checkpoint, so one probe at a time uses it.
 */
class HealthSession {
  readonly #identity: IdentitySource;
  readonly #clock: Clock;
  #session: Session | undefined;
  #closed = false;

  constructor(identity: IdentitySource, clock: Clock) {
    this.#identity = identity;
    this.#clock = clock;
  }

  async roundTrip(context: ProbeContext): Promise<ProbeResult> {
    if (this.#closed) throw new Error('the health session is closed');
    const started = this.#clock.now();
    const session = this.#session ?? (await this.#open(context));
    const nonce = randomBytes(16).toString('hex');
    const aborted = abortion(context.signal);
    const received = ownMessage(session.client, session.topic, nonce);
    try {
      context.step('publishing');
      await Promise.race([
        session.client.publishAsync(session.topic, nonce, { qos: 1 }).catch((error: Error) => {
          throw new Error(`the broker refused the publish to ${session.topic} (${error.message})`);
        }),
        session.broken,
        aborted.promise,
      ]);
      context.step('waiting for its own message');
      await Promise.race([received.promise, session.broken, aborted.promise]);
      return { status: 'pass', observedValue: Math.max(0, this.#clock.now() - started), observedUnit: 'ms' };
    } finally {
      received.cancel();
      aborted.cancel();
    }
  }

  async #open(context: ProbeContext): Promise<Session> {
    const identity = await resolve(this.#identity);
    const client = await open(identity, context, SESSION_KEEPALIVE_S);
    const topic = `${identity.topicPrefix.replace(/\/+$/, '')}/${randomBytes(12).toString('hex')}`;
    const broken = failure(client, () => 'in session');
    const aborted = abortion(context.signal);
    try {
      context.step('subscribing');
      const granted = await Promise.race([
        client.subscribeAsync(topic, { qos: 1 }).catch((error: Error) => {
          throw new Error(`the broker refused the subscription to ${topic} (${error.message})`);
        }),
        broken,
        aborted.promise,
      ]);
      const grant = granted[0];
      if (!grant || grant.qos === 128) throw new Error(`the broker refused the subscription to ${topic}`);
    } catch (error) {
      client.end(true);
      throw error;
    } finally {
      aborted.cancel();
    }
    const session: Session = { client, topic, broken };
    // A session that erred or closed is done with: the next probe opens another, rather than
    // failing on this one's error for good.
    const drop = () => {
      if (this.#session === session) this.#session = undefined;
      client.end(true);
    };
    client.once('close', drop);
    client.once('error', drop);
    if (this.#closed) {
      client.end(true);
      throw new Error('the health session is closed');
    }
    this.#session = session;
    return session;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const session = this.#session;
    this.#session = undefined;
    if (session) await new Promise<void>((done) => session.client.end(true, {}, () => done()));
  }
}

/**
 * One connection with the health identity: TLS with the broker verified against the identity's
 * name, CONNECT with a fresh client id and a clean session, resolved at CONNACK. One attempt: a
 * probe that cannot connect fails, it does not retry in the background. The client is ended on
 * any failure.
 */
async function open(id: BrokerHealthIdentity, context: ProbeContext, keepalive = 0): Promise<MqttClient> {
  context.step('connecting');
  const client = connect(id.url, {
    clientId: `${HEALTH_CLIENT_ID_PREFIX}${randomBytes(8).toString('hex')}`,
    clean: true,
    protocolVersion: 4,
    cert: id.certPem,
    key: id.keyPem,
    ca: [id.caPem],
    servername: id.servername,
    ...(id.localAddress === undefined ? {} : { localAddress: id.localAddress }),
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: context.timeoutMs,
    keepalive,
  });
  const broken = failure(client, () => 'connecting');
  const aborted = abortion(context.signal);
  try {
    await Promise.race([
      new Promise<void>((done) => client.once('connect', () => done())),
      broken,
      aborted.promise,
    ]);
    return client;
  } catch (error) {
    client.end(true);
    throw error;
  } finally {
    aborted.cancel();
  }
}

/** Rejects when the connection errs or closes; never resolves. */
function failure(client: MqttClient, step: () => string): Promise<never> {
  const promise = new Promise<never>((_resolve, reject) => {
    client.on('error', (error) => reject(new Error(describe(error))));
    client.once('close', () => reject(new Error(`the broker closed the connection (${step()})`)));
  });
  // Raced at every step; whichever step is pending sees it, so it is never unhandled.
  promise.catch(() => {});
  return promise;
}

/** Rejects when the run is aborted (its timeout); cancel() removes the listener. */
function abortion(signal: AbortSignal): { promise: Promise<never>; cancel(): void } {
  let onAbort = () => {};
  const promise = new Promise<never>((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => {});
  return { promise, cancel: () => signal.removeEventListener('abort', onAbort) };
}

function ownMessage(
  client: MqttClient,
  topic: string,
  nonce: string,
): { promise: Promise<void>; cancel(): void } {
  let listener = (_t: string, _payload: Buffer) => {};
  const promise = new Promise<void>((done) => {
    listener = (t, payload) => {
      if (t !== topic || payload.toString('utf8') !== nonce) return;
      client.off('message', listener);
      done();
    };
    client.on('message', listener);
  });
  return { promise, cancel: () => client.off('message', listener) };
}

/** A connection error in a few words: the code when there is one (no addresses, no secrets). */
function describe(error: Error & { code?: unknown }): string {
  if (typeof error.code === 'string') return `connection failed: ${error.code}`;
  if (typeof error.code === 'number') return `the broker refused the connection (return code ${error.code})`;
  return `connection failed: ${error.message}`;
}

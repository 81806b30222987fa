import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import { z } from 'zod';
import { type Clock, systemClock } from '../../common/index.js';
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
  /** Topics the identity may publish and subscribe under; each probe uses a fresh one below it. */
  topicPrefix: string;
  /** The local address to connect from (the broker exempts its own from the per-address limit). */
  localAddress?: string;
}

/** Every probe's client id starts with this (the broker recognises the health identity by it). */
export const HEALTH_CLIENT_ID_PREFIX = 'iotdr-health-';

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

export interface BrokerCheckpointOptions extends CheckpointOptions {
  /** Measures the round trip; default the system clock. */
  clock?: Clock;
}

/**
 * `broker:roundTrip`: a real MQTT round trip through the region's own TLS listener. Every probe
 * connects a new client (fresh client id, clean session), subscribes to a fresh random topic
 * under the identity's prefix, publishes a random nonce there with QoS 1 and passes only when
 * that very message comes back; the client is always ended. Nothing is kept between probes, so
 * no probe can pass on an earlier one's work. observedValue: connect to receipt, in ms.
 *
 * `identity` may be a function, so a rotated health certificate is picked up by the next probe.
 */
export function brokerCheckpoint(
  identity: BrokerHealthIdentity | (() => BrokerHealthIdentity | Promise<BrokerHealthIdentity>),
  options: BrokerCheckpointOptions = {},
): Checkpoint {
  const clock = options.clock ?? systemClock;
  if (typeof identity !== 'function') parseIdentity(identity);
  return {
    name: options.name ?? 'broker',
    component: 'broker',
    measurement: 'roundTrip',
    componentType: 'component',
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.critical === undefined ? {} : { critical: options.critical }),
    async probe(context) {
      const given = typeof identity === 'function' ? await identity() : identity;
      return roundTrip(parseIdentity(given), context, clock);
    },
  };
}

function parseIdentity(identity: BrokerHealthIdentity): BrokerHealthIdentity {
  const parsed = identitySchema.safeParse(identity);
  if (!parsed.success) throw new InvalidCheckpointError('broker health identity', parsed.error.issues);
  return parsed.data;
}

async function roundTrip(
  id: BrokerHealthIdentity,
  context: ProbeContext,
  clock: Clock,
): Promise<ProbeResult> {
  const started = clock.now();
  const clientId = `${HEALTH_CLIENT_ID_PREFIX}${randomBytes(8).toString('hex')}`;
  const topic = `${id.topicPrefix.replace(/\/+$/, '')}/${randomBytes(12).toString('hex')}`;
  const nonce = randomBytes(16).toString('hex');
  let step = 'connecting';
  const at = (label: string) => {
    step = label;
    context.step(label);
  };
  at('connecting');
  const client = connect(id.url, {
    clientId,
    clean: true,
    protocolVersion: 4,
    cert: id.certPem,
    key: id.keyPem,
    ca: [id.caPem],
    servername: id.servername,
    ...(id.localAddress === undefined ? {} : { localAddress: id.localAddress }),
    rejectUnauthorized: true,
    // One attempt: a probe that cannot connect fails, it does not retry in the background.
    reconnectPeriod: 0,
    connectTimeout: context.timeoutMs,
    keepalive: 0,
  });
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    client.end(true);
  };
  try {
    const broken = failure(client, context.signal, () => step);
    await Promise.race([connected(client), broken]);
    at('subscribing');
    const received = ownMessage(client, topic, nonce);
    const granted = await Promise.race([
      client.subscribeAsync(topic, { qos: 1 }).catch((error: Error) => {
        throw new Error(`the broker refused the subscription to ${topic} (${error.message})`);
      }),
      broken,
    ]);
    const grant = granted[0];
    if (!grant || grant.qos === 128) throw new Error(`the broker refused the subscription to ${topic}`);
    at('publishing');
    await Promise.race([
      client.publishAsync(topic, nonce, { qos: 1 }).catch((error: Error) => {
        throw new Error(`the broker refused the publish to ${topic} (${error.message})`);
      }),
      broken,
    ]);
    at('waiting for its own message');
    await Promise.race([received, broken]);
    return { status: 'pass', observedValue: Math.max(0, clock.now() - started), observedUnit: 'ms' };
  } finally {
    end();
  }
}

function connected(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.once('connect', () => resolve()));
}

/** Rejects when the connection errs or closes, or the run is aborted; never resolves. */
function failure(client: MqttClient, signal: AbortSignal, step: () => string): Promise<never> {
  const promise = new Promise<never>((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    client.on('error', (error) => reject(new Error(describe(error))));
    client.once('close', () => reject(new Error(`the broker closed the connection while ${step()}`)));
  });
  // Raced at every step; whichever step is pending sees it, so it is never unhandled.
  promise.catch(() => {});
  return promise;
}

function ownMessage(client: MqttClient, topic: string, nonce: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = (t: string, payload: Buffer) => {
      if (t !== topic || payload.toString('utf8') !== nonce) return;
      client.off('message', listener);
      resolve();
    };
    client.on('message', listener);
  });
}

/** A connection error in a few words: the code when there is one (no addresses, no secrets). */
function describe(error: Error & { code?: unknown }): string {
  if (typeof error.code === 'string') return `connection failed: ${error.code}`;
  if (typeof error.code === 'number') return `the broker refused the connection (return code ${error.code})`;
  return `connection failed: ${error.message}`;
}

import { z } from 'zod';
import {
  type Clock,
  DEFAULT_MQTT_NAME,
  DEFAULT_MQTT_PORT,
  DEFAULT_MQTT_TOKEN_PORT,
  formatPath,
  systemClock,
  systemTimers,
  type Timers,
  ValidationError,
} from '../common/index.js';
import type { DnsCache } from './resolver.js';

// The ports and the name a region serves devices on, defined once for the servers and the SDK.
export {
  DEFAULT_MQTT_NAME,
  DEFAULT_MQTT_PORT as DEFAULT_MTLS_PORT,
  DEFAULT_MQTT_TOKEN_PORT as DEFAULT_TOKEN_PORT,
};
/** How often the device asks DNS whether its name points elsewhere, in ms. */
export const DEFAULT_DNS_RECHECK_MS = 5000;
/**
 * While reconnecting away from an address that failed, how often the device asks DNS whether the
 * name points elsewhere now, in ms; an answer naming another address ends the backoff wait.
 */
export const DEFAULT_DNS_RETRY_MS = 1000;
/** Timeout of one DNS query, in ms (the resolver tries twice per server). */
export const DEFAULT_DNS_TIMEOUT_MS = 1000;
/** First reconnect delay bound, in ms: delays are random in [0, min(cap, base × 2^attempt)]. */
export const DEFAULT_BACKOFF_BASE_MS = 200;
/** Largest reconnect delay bound, in ms. */
export const DEFAULT_BACKOFF_CAP_MS = 10_000;
/** Accepted, unacknowledged messages the queue holds at most; more are refused. */
export const DEFAULT_QUEUE_MAX_MESSAGES = 10_000;
/** Unacknowledged QoS1 PUBLISHes on the wire at once; the rest wait in the queue, in order. */
export const DEFAULT_MAX_IN_FLIGHT = 100;
/**
 * Least time between two commits of the queue file, in ms; 0: every event-loop turn that wrote
 * commits at its end.
 */
export const DEFAULT_QUEUE_COMMIT_INTERVAL_MS = 0;
/** Time from opening the socket to the TCP connection being up, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/**
 * Time from the TCP connection being up to CONNACK, in ms: above the 30 s a busy broker holds a
 * connection in its handshake line, plus the handshake and the CONNECT's registry check.
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 60_000;
/** MQTT keepalive, in seconds: a silent connection is declared lost after 1.5 × this. */
export const DEFAULT_KEEPALIVE_SECONDS = 30;
/** How long getShadow / updateShadow wait for the answer, in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

const thingName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-zA-Z0-9:_-]+$/, 'a thing name: letters, digits, colon, underscore, hyphen');
const label = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, 'a DNS label (letters, digits, hyphens)');
const zone = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i,
    'a DNS zone such as iot.test',
  );
const pem = z.string().includes('-----BEGIN', { message: 'a PEM text' });
const port = z.number().int().min(1).max(65_535);
const server = z
  .string()
  .regex(/^(\[[0-9a-f:.]+\]|[0-9.]+|[0-9a-f:]+)(:\d{1,5})?$/i, 'an IP address, optionally with :port');

const schema = z
  .object({
    thingName,
    zone,
    mqttName: label.default(DEFAULT_MQTT_NAME),
    port: port.optional(),
    auth: z.discriminatedUnion('type', [
      z.object({ type: z.literal('mtls'), certPem: pem, keyPem: pem, caPem: pem }).strict(),
      z
        .object({ type: z.literal('token'), token: z.string().min(1), caPem: pem, port: port.optional() })
        .strict(),
    ]),
    dns: z
      .object({
        servers: z.array(server).min(1).optional(),
        recheckMs: z.number().int().min(0).max(86_400_000).default(DEFAULT_DNS_RECHECK_MS),
        retryMs: z.number().int().min(0).max(86_400_000).default(DEFAULT_DNS_RETRY_MS),
        timeoutMs: z.number().int().min(10).max(60_000).default(DEFAULT_DNS_TIMEOUT_MS),
      })
      .strict()
      .prefault({}),
    backoff: z
      .object({
        baseMs: z.number().int().min(1).max(3_600_000).default(DEFAULT_BACKOFF_BASE_MS),
        capMs: z.number().int().min(1).max(3_600_000).default(DEFAULT_BACKOFF_CAP_MS),
      })
      .strict()
      .prefault({})
      .refine((b) => b.capMs >= b.baseMs, { message: 'capMs must be at least baseMs', path: ['capMs'] }),
    queue: z
      .object({
        path: z.string().min(1),
        maxMessages: z.number().int().min(1).max(10_000_000).default(DEFAULT_QUEUE_MAX_MESSAGES),
        maxInFlight: z.number().int().min(1).max(65_535).default(DEFAULT_MAX_IN_FLIGHT),
        synchronous: z.enum(['full', 'normal']).default('full'),
        commitIntervalMs: z.number().int().min(0).max(60_000).default(DEFAULT_QUEUE_COMMIT_INTERVAL_MS),
      })
      .strict(),
    followNotices: z.boolean().default(true),
    localAddress: z.union([z.ipv4(), z.ipv6()]).optional(),
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(DEFAULT_CONNECT_TIMEOUT_MS),
    handshakeTimeoutMs: z.number().int().min(100).max(600_000).default(DEFAULT_HANDSHAKE_TIMEOUT_MS),
    keepaliveSeconds: z.number().int().min(1).max(65_535).default(DEFAULT_KEEPALIVE_SECONDS),
    tlsResumption: z.boolean().default(true),
    requestTimeoutMs: z.number().int().min(1).max(600_000).default(DEFAULT_REQUEST_TIMEOUT_MS),
  })
  .strict();

/** What `new DeviceClient(options)` takes; see docs/device.md for every field. */
export interface DeviceClientOptions {
  /** The thing name; also the MQTT client id (the device policy template requires it). */
  thingName: string;
  /** The fleet's DNS zone, e.g. `iot.test`. */
  zone: string;
  /** Label of the broker name under the zone. Default `mqtt` (→ `mqtt.<zone>`). */
  mqttName?: string;
  /** Broker port. Default 8883 for mTLS, `auth.port` or 8884 for token auth. */
  port?: number;
  auth:
    | { type: 'mtls'; certPem: string; keyPem: string; caPem: string }
    | { type: 'token'; token: string; caPem: string; port?: number };
  dns?: {
    /** DNS servers as `ip` or `ip:port` (`[v6]:port`). Default: the system's resolv.conf servers. */
    servers?: string[];
    /** Interval of the DNS re-check while connected, in ms; 0 turns it off. Default 5000. */
    recheckMs?: number;
    /**
     * While reconnecting away from an address that failed, how often DNS is asked whether the name
     * points elsewhere, in ms; another address ends the backoff wait at once. 0 turns it off.
     * Default 1000.
     */
    retryMs?: number;
    /** Timeout of one DNS query, in ms. Default 1000. */
    timeoutMs?: number;
  };
  /** Reconnect delays: random in [0, min(capMs, baseMs × 2^attempt)] (full jitter). */
  backoff?: {
    /** Default 200 ms. */
    baseMs?: number;
    /** Default 10,000 ms. */
    capMs?: number;
  };
  queue: {
    /** The queue's SQLite file; created when missing. One client at a time per file. */
    path: string;
    /** Accepted, unacknowledged messages at most; `publish` refuses more. Default 10,000. */
    maxMessages?: number;
    /** Unacknowledged PUBLISHes on the wire at once. Default 100. */
    maxInFlight?: number;
    /**
     * `full` (default): an accepted message is fsynced and survives a power cut. `normal`: it
     * survives the process being killed, not a power cut (no fsync per message; a simulator).
     */
    synchronous?: 'full' | 'normal';
    /**
     * Least time between two commits of the queue file, in ms: the writes of every device of the
     * file in between are committed together, and `publish` resolves at that commit (up to this
     * much later). 0 (default): every event-loop turn that wrote commits at its end.
     */
    commitIntervalMs?: number;
  };
  /** Subscribe to `$iotdr/notices/failover` and move on a newer notice. Default true. */
  followNotices?: boolean;
  /** The local IP the device's connections leave from (the system's choice when absent). */
  localAddress?: string;
  /** Socket open to the TCP connection up, in ms: an address that does not answer. Default 5000. */
  connectTimeoutMs?: number;
  /**
   * TCP connection up to CONNACK, in ms. A broker absorbing a storm holds new connections in its
   * handshake line and serves them in arrival order, up to 30 s each (it closes at once those it
   * cannot serve in time): waiting is then one connection per device instead of one per retry.
   * The wait ends at once when the name, re-checked every `dns.recheckMs`, moves elsewhere.
   * Default 60,000.
   */
  handshakeTimeoutMs?: number;
  /** MQTT keepalive in seconds. Default 30. */
  keepaliveSeconds?: number;
  /**
   * Offer the TLS session of the last connection on every reconnect, to either region: every
   * broker of the fleet shares the ticket keys, so a device that moves skips the full handshake.
   * The broker still checks the certificate against the registry at CONNECT. Default true.
   */
  tlsResumption?: boolean;
  /** How long getShadow / updateShadow wait for the broker's answer, in ms. Default 10,000. */
  requestTimeoutMs?: number;
  /** Time source for DNS TTLs. Default the system clock. */
  clock?: Clock;
  /** Timers for backoff delays, DNS re-checks and request timeouts. Default the system's. */
  timers?: Timers;
  /** Uniform random in [0, 1) for the jitter. Default Math.random. */
  random?: () => number;
  /**
   * Answers for the periodic DNS re-check shared with the other devices given the same cache, each
   * used no longer than its TTL (a re-check may see an answer up to a TTL old instead of asking).
   * Default: none, every re-check asks DNS.
   */
  dnsCache?: DnsCache;
}

export interface ResolvedDeviceOptions {
  readonly thingName: string;
  readonly zone: string;
  /** `mqtt.<zone>`: what is resolved and what the broker certificate must name. */
  readonly host: string;
  readonly port: number;
  readonly auth: DeviceClientOptions['auth'];
  readonly dns: {
    readonly servers?: readonly string[];
    readonly recheckMs: number;
    readonly retryMs: number;
    readonly timeoutMs: number;
  };
  readonly backoff: { readonly baseMs: number; readonly capMs: number };
  readonly queue: {
    readonly path: string;
    readonly maxMessages: number;
    readonly maxInFlight: number;
    readonly synchronous: 'full' | 'normal';
    readonly commitIntervalMs: number;
  };
  readonly followNotices: boolean;
  readonly localAddress?: string;
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly keepaliveSeconds: number;
  readonly tlsResumption: boolean;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly random: () => number;
  readonly dnsCache?: DnsCache;
}

/** Validates the options once, at construction; a bad field throws `IOTDR_DEVICE_INVALID_OPTIONS` naming it. */
export function parseDeviceOptions(input: DeviceClientOptions): ResolvedDeviceOptions {
  const { clock, timers, random, dnsCache, ...data } = (input ?? {}) as DeviceClientOptions;
  const result = schema.safeParse(data);
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
    throw new ValidationError(
      `invalid device options: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
      'IOTDR_DEVICE_INVALID_OPTIONS',
    );
  }
  const o = result.data;
  const defaultPort = o.auth.type === 'token' ? (o.auth.port ?? DEFAULT_MQTT_TOKEN_PORT) : DEFAULT_MQTT_PORT;
  return Object.freeze({
    thingName: o.thingName,
    zone: o.zone,
    host: `${o.mqttName}.${o.zone}`.toLowerCase(),
    port: o.port ?? defaultPort,
    auth: Object.freeze(o.auth),
    dns: Object.freeze({
      ...(o.dns.servers ? { servers: Object.freeze([...o.dns.servers]) } : {}),
      recheckMs: o.dns.recheckMs,
      retryMs: o.dns.retryMs,
      timeoutMs: o.dns.timeoutMs,
    }),
    backoff: Object.freeze(o.backoff),
    queue: Object.freeze(o.queue),
    followNotices: o.followNotices,
    ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress }),
    connectTimeoutMs: o.connectTimeoutMs,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    keepaliveSeconds: o.keepaliveSeconds,
    tlsResumption: o.tlsResumption,
    requestTimeoutMs: o.requestTimeoutMs,
    clock: clock ?? systemClock,
    timers: timers ?? systemTimers,
    random: random ?? Math.random,
    ...(dnsCache === undefined ? {} : { dnsCache }),
  });
}

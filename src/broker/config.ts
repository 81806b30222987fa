/**
 * The `broker` section of the configuration (docs/broker.md): limits of every region's MQTT
 * broker, its worker processes and TLS session tickets; and a region's `redis`, which the broker
 * processes of one region share. The broker's own defaults (DEFAULT_LIMITS) are these.
 */
import { z } from 'zod';
import { expecting, filePath, integerWithin, type Range, section, trueOrFalse } from '../common/index.js';
import { DEFAULT_TICKET_ROTATE_MS, MAX_TICKET_ROTATE_MS } from './tickets.js';

const HOUR_MS = 3_600_000;

/** Live sessions per broker: derived at start from the process's open files and memory (docs/broker.md). */
export const DEFAULT_MAX_CONNECTIONS = 'auto';
/** New connections per second from one source address. Default 100. */
export const DEFAULT_CONNECTIONS_PER_SECOND_PER_ADDRESS = 100;
/** Largest PUBLISH payload, in bytes. Default 131,072 (128 KiB, as AWS IoT Core). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 128 * 1024;
/** Longest topic or topic filter, in UTF-8 bytes. Default 256 (AWS IoT Core). */
export const DEFAULT_MAX_TOPIC_LENGTH = 256;
/** Most levels in a topic or filter. Default 8 (AWS IoT Core allows 7 slashes). */
export const DEFAULT_MAX_TOPIC_LEVELS = 8;
/** Time a new connection has to send CONNECT, TLS handshake included, in ms. Default 10,000. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** One process: on 2 cores a second broker process competes with the region's own work (docs/broker.md). */
export const DEFAULT_WORKERS = 1;
/** Hours one TLS session ticket key is used; a ticket stays resumable for two such periods. Default 24. */
export const DEFAULT_TLS_TICKET_ROTATE_HOURS = DEFAULT_TICKET_ROTATE_MS / HOUR_MS;

/** Bounds of the section's numbers, inclusive; keys are paths within the section. */
export const BROKER_LIMITS = {
  /** Sessions, when not `auto`. */
  maxConnections: { min: 1, max: 10_000_000 },
  /** Connections per second. */
  connectionsPerSecondPerAddress: { min: 1, max: 1_000_000 },
  /** Bytes: up to MQTT's own 256 MiB. */
  maxPayloadBytes: { min: 1, max: 256 * 1024 * 1024 },
  /** Bytes: MQTT's UTF-8 string limit. */
  maxTopicLength: { min: 1, max: 65_535 },
  /** Levels. */
  maxTopicLevels: { min: 1, max: 100 },
  /** ms. */
  connectTimeoutMs: { min: 100, max: 600_000 },
  /** Processes. */
  workers: { min: 1, max: 256 },
  /** Hours: two periods must fit in TLS 1.3's 7-day ticket lifetime (RFC 8446 §4.6.1). */
  'tlsTickets.rotateHours': { min: 1, max: MAX_TICKET_ROTATE_MS / HOUR_MS },
} as const satisfies Record<string, Range>;

export interface BrokerConfig {
  /** Open the token listener (CONNECT username = thing name, password = device token). Default false. */
  readonly tokenAuth: boolean;
  /**
   * Live sessions at most, per region; more are refused (CONNACK server unavailable). A number of
   * sessions, or `auto`: derived at start from the process's open-file limit and memory. Default auto.
   */
  readonly maxConnections: number | 'auto';
  /** New connections per second from one source address; more are closed at once. Default 100. */
  readonly connectionsPerSecondPerAddress: number;
  /** Largest PUBLISH payload in bytes; a bigger one closes the session. Default 131,072 (128 KiB). */
  readonly maxPayloadBytes: number;
  /** Longest topic in bytes (UTF-8). Default 256. */
  readonly maxTopicLength: number;
  /** Most topic levels (separated by /). Default 8. */
  readonly maxTopicLevels: number;
  /** Time a new connection has to send CONNECT, in ms. Default 10,000. */
  readonly connectTimeoutMs: number;
  /**
   * Broker processes per region, sharing its MQTT ports: each takes connections (and their TLS
   * handshakes) on a core of its own. More than 1 needs the region's `redis`. Default 1
   * (docs/broker.md, "Workers and hosts", says why on a 2-core machine).
   */
  readonly workers: number;
  /** TLS session resumption across every broker of every region (docs/broker.md). */
  readonly tlsTickets: {
    /** Hours one ticket key seals new tickets; tickets stay resumable for two periods. Default 24. */
    readonly rotateHours: number;
  };
}

const L = BROKER_LIMITS;
const MAX_CONNECTIONS_MESSAGE = `expected auto (derived from the machine's open files and memory) or an integer between ${L.maxConnections.min} and ${L.maxConnections.max} (sessions)`;
/** One message for every wrong value, as integerWithin gives. */
const maxConnectionsSchema = z
  .union([z.literal('auto'), z.number()], { error: expecting(MAX_CONNECTIONS_MESSAGE) })
  .refine(
    (n) => n === 'auto' || (Number.isInteger(n) && n >= L.maxConnections.min && n <= L.maxConnections.max),
    { error: expecting(MAX_CONNECTIONS_MESSAGE) },
  );

export const brokerSection = section({
  tokenAuth: trueOrFalse().default(false),
  maxConnections: maxConnectionsSchema.default(DEFAULT_MAX_CONNECTIONS),
  connectionsPerSecondPerAddress: integerWithin(
    L.connectionsPerSecondPerAddress,
    'connections per second',
  ).default(DEFAULT_CONNECTIONS_PER_SECOND_PER_ADDRESS),
  maxPayloadBytes: integerWithin(L.maxPayloadBytes, 'bytes').default(DEFAULT_MAX_PAYLOAD_BYTES),
  maxTopicLength: integerWithin(L.maxTopicLength, 'bytes').default(DEFAULT_MAX_TOPIC_LENGTH),
  maxTopicLevels: integerWithin(L.maxTopicLevels, 'levels').default(DEFAULT_MAX_TOPIC_LEVELS),
  connectTimeoutMs: integerWithin(L.connectTimeoutMs, 'ms').default(DEFAULT_CONNECT_TIMEOUT_MS),
  workers: integerWithin(L.workers, 'processes').default(DEFAULT_WORKERS),
  tlsTickets: section({
    rotateHours: integerWithin(
      L['tlsTickets.rotateHours'],
      'hours; a ticket lives two periods and TLS 1.3 allows at most 7 days',
    ).default(DEFAULT_TLS_TICKET_ROTATE_HOURS),
  }).prefault({}),
}).prefault({});

export interface RedisConfig {
  /** `redis://host[:port][/db]` or `rediss://` (TLS); no password in it. */
  readonly url: string;
  /** File holding the Redis password (mode 0600); absolute, or relative to the state directory. */
  readonly passwordFile?: string;
}

const REDIS_URL_MESSAGE = 'expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379/0';

/** As for PostgreSQL, the URL is never echoed back and carries no secret. */
const redisUrlSchema = z.string({ error: expecting(REDIS_URL_MESSAGE) }).superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: REDIS_URL_MESSAGE });
    return;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    ctx.addIssue({ code: 'custom', message: `${REDIS_URL_MESSAGE}, got a ${url.protocol} URL` });
    return;
  }
  if (url.hostname === '') ctx.addIssue({ code: 'custom', message: `${REDIS_URL_MESSAGE}, with a host` });
  if (!/^\/?(\d{1,2})?$/.test(url.pathname))
    ctx.addIssue({ code: 'custom', message: `${REDIS_URL_MESSAGE}: after the host only a database number` });
  if (url.password !== '')
    ctx.addIssue({
      code: 'custom',
      message:
        'the URL carries a password; secrets never go in the config file: remove it from the URL, ' +
        'write the password to a file with mode 0600 and name that file in passwordFile',
    });
});

/** A region's own Redis: `regions[].redis`. */
export const redisSection = section({ url: redisUrlSchema, passwordFile: filePath().optional() });

/** host:port/db of a Redis URL, to tell two regions sharing one; undefined for what is no Redis URL. */
export function redisKey(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return undefined;
    return `${url.hostname.toLowerCase()}:${url.port || '6379'}/${url.pathname.replace(/^\//, '') || '0'}`;
  } catch {
    return undefined;
  }
}

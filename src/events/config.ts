/**
 * The `events` section of the configuration: which engine holds every region's event bus, its
 * retention and durability; and `regions[].nats`, a region's own NATS when the engine is JetStream.
 * Defaults are the buses' own (SqliteEventBus and JetStreamEventBus fall back to the same constants).
 */
import { z } from 'zod';
import {
  addressSchema,
  expecting,
  integerWithin,
  matching,
  oneOf,
  portSchema,
  type Range,
  REGION_NAME_PATTERN,
  section,
} from '../common/index.js';
import {
  DEFAULT_SQLITE_SYNCHRONOUS,
  SQLITE_SYNCHRONOUS_MODES,
  type SqliteSynchronous,
} from '../registry/index.js';

/** Events older than this go, in seconds. Default 7 days. */
export const DEFAULT_MAX_AGE_SECONDS = 7 * 24 * 3600;
/** The oldest events go once the log holds more than this, in bytes. Default 1 GiB. */
export const DEFAULT_MAX_BYTES = 1024 ** 3;
/** How long JetStream remembers a message id to drop a re-sent copy, in seconds. Default 2 min. */
export const DEFAULT_DUPLICATE_WINDOW_SECONDS = 120;

/** Where a region's events live: a SQLite file in the region process, or a stream in the region's NATS. */
export const EVENT_ENGINES = ['sqlite', 'jetstream'] as const;
export type EventEngine = (typeof EVENT_ENGINES)[number];
export const DEFAULT_EVENT_ENGINE: EventEngine = 'sqlite';

export const DEFAULT_NATS_CLIENT_PORT = 4222;
export const DEFAULT_NATS_CLUSTER_PORT = 6222;
/** Servers of one region's NATS: 1 to 5 (JetStream keeps at most 5 replicas). */
export const MAX_NATS_SERVERS = 5;

/** Bounds of the section's numbers, inclusive. */
export const EVENTS_LIMITS = {
  /** Seconds: a minute to ten years. */
  retentionSeconds: { min: 60, max: 10 * 365 * 24 * 3600 },
  /** Bytes: 1 MiB and up. */
  maxBytes: { min: 1024 * 1024, max: Number.MAX_SAFE_INTEGER },
  /** Seconds: a second to a day (JetStream keeps every id of the window in memory). */
  duplicateWindowSeconds: { min: 1, max: 24 * 3600 },
} as const satisfies Record<string, Range>;

/** Bounds of `regions[].nats`, inclusive. */
export const NATS_LIMITS = {
  /** Copies of each event in a region's NATS. */
  replicas: { min: 1, max: MAX_NATS_SERVERS },
} as const satisfies Record<string, Range>;

export interface EventsConfig {
  /** sqlite (default): a file in each region process; jetstream: a stream in each region's NATS (`regions[].nats`). */
  readonly engine: EventEngine;
  /** Events older than this are dropped, in seconds. Default 7 days. */
  readonly retentionSeconds: number;
  /** The bus is kept under about this many bytes, oldest events dropped first. Default 1 GiB. */
  readonly maxBytes: number;
  /** SQLite `PRAGMA synchronous` of the bus (engine sqlite). Default full. */
  readonly synchronous: SqliteSynchronous;
  /** JetStream: a copy of an event sent again within this many seconds is not stored twice. Default 120. */
  readonly duplicateWindowSeconds: number;
}

export const eventsSection = section({
  engine: oneOf(EVENT_ENGINES).default(DEFAULT_EVENT_ENGINE),
  retentionSeconds: integerWithin(EVENTS_LIMITS.retentionSeconds, 'seconds').default(DEFAULT_MAX_AGE_SECONDS),
  maxBytes: integerWithin(EVENTS_LIMITS.maxBytes, 'bytes').default(DEFAULT_MAX_BYTES),
  synchronous: oneOf(SQLITE_SYNCHRONOUS_MODES).default(DEFAULT_SQLITE_SYNCHRONOUS),
  duplicateWindowSeconds: integerWithin(EVENTS_LIMITS.duplicateWindowSeconds, 'seconds').default(
    DEFAULT_DUPLICATE_WINDOW_SECONDS,
  ),
}).prefault({});

export interface NatsServerConfig {
  /** The server's name in the region's NATS (its site: `urn:iotdr:site:nats:<region>.<name>`). */
  readonly name: string;
  readonly address: string;
  /** Port for clients (the region, its broker workers and nodes, analytics). Default 4222. */
  readonly clientPort: number;
  /** Port for the other servers of the region's cluster. Default 6222. */
  readonly clusterPort: number;
}

export interface NatsConfig {
  /** The servers; `iotdr nats --region R --server NAME` runs one. Several make a JetStream cluster. */
  readonly servers: readonly NatsServerConfig[];
  /** Copies of each event, at most the number of servers. Default: one per server (up to 5). */
  readonly replicas?: number;
}

const serverName = matching(
  REGION_NAME_PATTERN,
  'a server name: a lowercase letter, then lowercase letters, digits or hyphens',
);

/** A region's own NATS: `regions[].nats` (used with events.engine jetstream). */
export const natsSection = section({
  servers: z
    .array(
      section({
        name: serverName,
        address: addressSchema,
        clientPort: portSchema.default(DEFAULT_NATS_CLIENT_PORT),
        clusterPort: portSchema.default(DEFAULT_NATS_CLUSTER_PORT),
      }),
      { error: expecting('expected a list of { name, address, clientPort, clusterPort }') },
    )
    .min(1, { error: 'expected at least one NATS server' })
    .max(MAX_NATS_SERVERS, { error: `expected at most ${MAX_NATS_SERVERS} NATS servers` }),
  replicas: integerWithin(NATS_LIMITS.replicas).optional(),
});

/** Copies of each event in a region's stream: the configured count, else one per server (up to 5). */
export function natsReplicasOf(nats: NatsConfig): number {
  return nats.replicas ?? Math.min(nats.servers.length, MAX_NATS_SERVERS);
}

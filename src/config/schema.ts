/**
 * The schema of `iotdr.yaml`, its defaults (named constants, next to the fields they fill), and the
 * types of the parsed, fully-defaulted configuration. Every message says what would be valid, so a
 * user can fix a field from the message alone.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { DEFAULT_BODY_LIMIT } from '../http/index.js';
import { RULE_HTTP_ATTEMPTS, RULE_HTTP_TIMEOUT_MS, ruleDefinitionSchema } from '../registry/index.js';

// ---------------------------------------------------------------------------------------------
// Defaults: the embedded two-region deployment of docs/architecture.md §2, every process on one machine.

/** DNS zone of the fleet. */
export const DEFAULT_ZONE = 'iot.test';
/** Label of the devices' name under the zone: `mqtt.<zone>`. */
export const DEFAULT_MQTT_NAME = 'mqtt';
/** Label of the command-and-control name under the zone: `api.<zone>`. */
export const DEFAULT_API_NAME = 'api';
/** Authoritative DNS server of `iotdr control` (UDP and TCP). */
export const DEFAULT_DNS_ADDRESS = '127.0.0.10';
export const DEFAULT_DNS_PORT = 5353;
/** HTTP port of an `iotdr dns` server (its /health and /metrics). */
export const DEFAULT_DNS_SERVER_HTTP_PORT = 8053;
/** Label of the control process's own name server: `ns.<zone>`. */
export const CONTROL_NAMESERVER = 'ns';
/** TTL of the fleet's A/AAAA answers, in seconds; part of the RTO, so kept short. */
export const DEFAULT_DNS_TTL = 5;
/** HTTP API of `iotdr control`. */
export const DEFAULT_CONTROL_ADDRESS = '127.0.0.10';
export const DEFAULT_CONTROL_PORT = 8080;
/** HTTP API and dashboard of `iotdr analytics`. */
export const DEFAULT_ANALYTICS_ADDRESS = '127.0.0.10';
export const DEFAULT_ANALYTICS_PORT = 8081;
export const DEFAULT_LOG_LEVEL = 'info';
/** Largest HTTP request body the APIs accept, in bytes (1 MiB). */
export const DEFAULT_API_BODY_LIMIT = DEFAULT_BODY_LIMIT;
/** HTTP API port of a region. */
export const DEFAULT_REGION_API_PORT = 8080;
/** Port of each region's command-and-control listener (`api.<zone>`). */
export const DEFAULT_REGION_CNC_PORT = 8090;
/** MQTT-over-TLS port of a region. */
export const DEFAULT_REGION_MQTT_PORT = 8883;
/** MQTT-over-TLS port of a region's token listener (username + device token), when enabled. */
export const DEFAULT_REGION_MQTT_TOKEN_PORT = 8884;
export const DEFAULT_STORE_ENGINE = 'sqlite';
/** SQLite `PRAGMA synchronous`: `full` survives power loss, `normal` in WAL mode may lose the last commits. */
export const DEFAULT_SQLITE_SYNCHRONOUS = 'full';
/** Connections in a region's PostgreSQL pool. */
export const DEFAULT_POSTGRES_POOL_SIZE = 10;
/**
 * The regions when the file names none; ports and store take their defaults. A lower priority
 * number is preferred, so `us-east` is the primary.
 */
export const DEFAULT_REGIONS: ReadonlyArray<Readonly<{ name: string; priority: number; address: string }>> =
  Object.freeze([
    Object.freeze({ name: 'us-east', priority: 1, address: '127.0.0.11' }),
    Object.freeze({ name: 'us-west', priority: 2, address: '127.0.0.12' }),
  ]);

// Limits, named so the messages and the documentation quote the same numbers.
/** Replication defaults (docs/architecture.md §5.2). */
export const DEFAULT_REPLICATION_BATCH_SIZE = 1000;
export const DEFAULT_REPLICATION_WAIT_MS = 10_000;
export const DEFAULT_REPLICATION_SNAPSHOT_PAGE_SIZE = 1000;
export const DEFAULT_REPLICATION_RETRY_BASE_MS = 100;
export const DEFAULT_REPLICATION_RETRY_MAX_MS = 5000;
/** Seconds a tombstone is kept: a change older than a purged delete could resurrect it. 7 days. */
export const DEFAULT_TOMBSTONE_RETENTION_S = 7 * 24 * 3600;
/** Seconds a change record is kept; a peer further behind copies a snapshot. 7 days. */
export const DEFAULT_CHANGE_LOG_RETENTION_S = 7 * 24 * 3600;
export const DEFAULT_MAINTENANCE_INTERVAL_S = 3600;
// Broker limits (AWS IoT Core's where it has one).
/** Live sessions per broker: derived at start from the process's open files and memory (docs/broker.md). */
export const DEFAULT_BROKER_MAX_CONNECTIONS = 'auto';
/** Most sessions `broker.maxConnections` may name. */
export const BROKER_MAX_CONNECTIONS_MAX = 10_000_000;
export const DEFAULT_BROKER_CONNECTIONS_PER_SECOND_PER_ADDRESS = 100;
export const DEFAULT_BROKER_MAX_PAYLOAD_BYTES = 128 * 1024;
export const DEFAULT_BROKER_MAX_TOPIC_LENGTH = 256;
export const DEFAULT_BROKER_MAX_TOPIC_LEVELS = 8;
export const DEFAULT_BROKER_CONNECT_TIMEOUT_MS = 10_000;
/** One process: on 2 cores a second broker process competes with the region's own work (docs/broker.md). */
export const DEFAULT_BROKER_WORKERS = 1;
export const BROKER_WORKERS_MAX = 256;
/** Hours one TLS session ticket key is used; a ticket stays resumable for two such periods. */
export const DEFAULT_BROKER_TLS_TICKET_ROTATE_HOURS = 24;
/** Two periods must fit in TLS 1.3's 7-day ticket lifetime (RFC 8446 §4.6.1). */
export const BROKER_TLS_TICKET_ROTATE_HOURS_MAX = 84;
/** Event bus retention: 7 days or 1 GiB, whichever is reached first. */
export const DEFAULT_EVENTS_RETENTION_S = 7 * 24 * 3600;
export const DEFAULT_EVENTS_MAX_BYTES = 1024 ** 3;
/** Health: per-checkpoint timeout; the answer comes within timeout + a small margin. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 1000;
export const DEFAULT_HEALTH_MAX_LAG_MS = 5000;
export const DEFAULT_HEALTH_MAX_LAG_CHANGES = 10_000;
/**
 * Health: the fresh-connect broker checkpoint (a full mutual-TLS handshake and CONNACK) runs in
 * the background this often while it passes, under its own timeout; requests never wait for it.
 */
export const DEFAULT_HEALTH_CONNECT_EVERY_MS = 30_000;
export const DEFAULT_HEALTH_CONNECT_TIMEOUT_MS = 5000;
/** Components whose failing checkpoint fails the region (docs/architecture.md §5.3); others only warn. */
export const DEFAULT_CRITICAL_COMPONENTS = [
  'broker',
  'registry',
  'events',
  'app',
  'cnc',
  'analytics',
] as const;
export const HEALTH_COMPONENTS = [
  'broker',
  'registry',
  'replication',
  'events',
  'app',
  'cnc',
  'analytics',
] as const;
export const HTTP_CHECK_COMPONENTS = ['app', 'cnc', 'analytics'] as const;
/** Failover (docs/architecture.md §5.3): every RTO factor small and configurable. */
export const DEFAULT_FAILOVER_INTERVAL_MS = 1000;
export const DEFAULT_FAILOVER_TIMEOUT_MS = 1000;
/**
 * A probe still unanswered after this many timeouts fails: the region does not answer. An answer
 * later than the timeout but within this is slow: the region is degraded, not down.
 */
export const DEFAULT_FAILOVER_GIVE_UP_TIMEOUTS = 3;
/** How long a region may stay degraded (slow answers, timed-out checkpoints) before it is declared down. */
export const DEFAULT_FAILOVER_DEGRADED_BUDGET_MS = 15_000;
export const DEFAULT_FAILURE_THRESHOLD = 3;
export const DEFAULT_RECOVERY_THRESHOLD = 5;
export const DEFAULT_STABLE_PERIOD_MS = 60_000;
export const FAILBACK_MODES = ['manual', 'auto'] as const;
export const DISCONNECT_ON_FAILOVER_MODES = ['never', 'when-reachable'] as const;
/** The checker that runs inside `iotdr control`. */
export const DEFAULT_CHECKER_ID = 'control';
/** Supervision of the child processes of `iotdr up` and `iotdr drill`. */
export const SUPERVISION_RESTART_MODES = ['always', 'never'] as const;
export const DEFAULT_SUPERVISION_RESTART = 'always';
/**
 * First restart delay, in ms. Longer than the default failover detection (1,000 × 3 + 1,000), so a
 * dead region is seen down and the fleet moved before it returns.
 */
export const DEFAULT_RESTART_DELAY_MS = 10_000;
export const DEFAULT_RESTART_MAX_DELAY_MS = 300_000;
/** A process up this long since its last start has its restart delay back at restartDelayMs. */
export const DEFAULT_SUPERVISION_STABLE_MS = 60_000;

export const PORT_MIN = 0;
export const PORT_MAX = 65_535;
export const DNS_TTL_MIN = 1;
export const DNS_TTL_MAX = 86_400;
export const API_BODY_LIMIT_MIN = 1024;
export const API_BODY_LIMIT_MAX = 64 * 1024 * 1024;
export const POSTGRES_POOL_SIZE_MIN = 1;
export const POSTGRES_POOL_SIZE_MAX = 100;
export const REGION_PRIORITY_MIN = 1;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const SQLITE_SYNCHRONOUS_MODES = ['full', 'normal'] as const;
export const STORE_ENGINES = ['sqlite', 'postgres'] as const;
/** Query parameters of a PostgreSQL URL that carry a secret (libpq connection parameters). */
const SECRET_URL_PARAMS = ['password', 'sslpassword'];

// ---------------------------------------------------------------------------------------------
// Types of the parsed configuration. Deeply readonly: `parseConfig` returns a frozen object.

export type LogLevel = (typeof LOG_LEVELS)[number];
export type SqliteSynchronous = (typeof SQLITE_SYNCHRONOUS_MODES)[number];

export interface SqliteStoreConfig {
  readonly engine: 'sqlite';
  /** Database file; absolute, or relative to the state directory. Default `<stateDir>/regions/<name>/registry.db`. */
  readonly path?: string;
  /** SQLite `PRAGMA synchronous`. Default `full`. */
  readonly synchronous: SqliteSynchronous;
}

export interface PostgresStoreConfig {
  readonly engine: 'postgres';
  /** `postgres://` or `postgresql://` URL without a password. */
  readonly url: string;
  /** File holding the password (mode 0600); absolute, or relative to the state directory. */
  readonly passwordFile?: string;
  /** Connections in the pool, 1..100. Default 10. */
  readonly poolSize: number;
  /** PostgreSQL schema for iotdr's tables; the server's search_path when absent. */
  readonly schema?: string;
}

export type StoreConfig = SqliteStoreConfig | PostgresStoreConfig;

export interface RegionConfig {
  /** `^[a-z][a-z0-9-]{0,62}$`, unique. */
  readonly name: string;
  /** Integer ≥ 1, unique; the lowest number is the preferred region (the primary). */
  readonly priority: number;
  /** IPv4/IPv6 literal or hostname: where the region listens and what DNS answers when it is active. */
  readonly address: string;
  readonly api: { readonly port: number };
  /**
   * The command-and-control API consoles reach as `api.<zone>`: its own listener on the region's
   * address, so it can fail (and be checked) on its own. `tls: true` serves HTTPS with a
   * certificate from the embedded CA naming `api.<zone>`. Defaults: port 8090, tls false.
   */
  readonly cnc: { readonly port: number; readonly tls: boolean };
  readonly mqtt: {
    readonly port: number;
    /** Port of the token listener; used only when `broker.tokenAuth` is on. Default 8884. */
    readonly tokenPort: number;
  };
  readonly store: StoreConfig;
  /**
   * The region's own Redis, shared by every broker node of the region (workers, hosts): messages,
   * retained messages and persistent sessions cross nodes through it (docs/broker.md, "Workers
   * and hosts"). Absent: one broker process, in memory. Never shared with another region.
   */
  readonly redis?: RedisConfig;
}

export interface RedisConfig {
  /** `redis://host[:port][/db]` or `rediss://` (TLS); no password in it. */
  readonly url: string;
  /** File holding the Redis password (mode 0600); absolute, or relative to the state directory. */
  readonly passwordFile?: string;
}

export interface ListenerConfig {
  readonly address: string;
  /** 0..65535; 0 asks the system for a free port (tests). */
  readonly port: number;
}

export const DNS_PROVIDERS = ['builtin', 'powerdns'] as const;

export interface PowerDnsConfig {
  /** Base URL of the PowerDNS Authoritative HTTP API, e.g. http://127.0.0.1:8081. */
  readonly url: string;
  /** Server id in the API path. Default localhost. */
  readonly serverId: string;
  /** File holding the API key (mode 0600); absolute, or relative to the state directory. */
  readonly apiKeyFile: string;
}

export interface DnsConfig extends ListenerConfig {
  /** TTL of the fleet's answers in seconds, 1..86400. Default 5. */
  readonly ttl: number;
  /**
   * Who else serves the fleet's names: `builtin` (default) only the DNS of `iotdr control`;
   * `powerdns` also an existing PowerDNS Authoritative server, driven through its API.
   */
  readonly provider: (typeof DNS_PROVIDERS)[number];
  /** More failover names (labels under the zone) that follow the active region like mqtt and api. */
  readonly extraNames: readonly string[];
  readonly powerdns?: PowerDnsConfig;
  /**
   * More authoritative servers for the zone, each an `iotdr dns --name NAME` process (one per
   * region, say) that follows the controller and keeps serving its last decision without it.
   * Listed with `ns.<zone>` (iotdr control's own) in the zone's NS records.
   */
  readonly servers: readonly DnsServerConfig[];
}

export interface DnsServerConfig {
  /** The server's label: `NAME.<zone>` is an NS of the zone. Not `ns`, nor a fleet name. */
  readonly name: string;
  /** IPv4 or IPv6 literal it listens on (and the NS glue answers). */
  readonly address: string;
  /** DNS port, UDP and TCP. Default 5353. */
  readonly port: number;
  /** Port of its HTTP endpoint on the same address: /health, /metrics. Default 8053. */
  readonly httpPort: number;
}

/**
 * The rule a fleet needs for analytics: device telemetry (`devices/<thing>/telemetry`, where the
 * device policy template lets a device publish) onto the region's event bus. A `rules` list in the
 * configuration replaces it.
 */
export const DEFAULT_RULES = [
  { name: 'telemetry', topicFilter: 'devices/+/telemetry', actions: [{ type: 'bus' as const }] },
] as const;

/** Defaults of `iotdr analytics` (docs/architecture.md §4.13, docs/analytics.md). */
export const DEFAULT_ANALYTICS_MAX_LAG_MS = 5000;
export const DEFAULT_ANALYTICS_SEQUENCE_FIELD = 'seq';
export const DEFAULT_ANALYTICS_RETENTION_SECONDS = 604_800;

export interface AnalyticsConfig extends ListenerConfig {
  /**
   * A region's ingestion is healthy while analytics is at most this far behind its bus, in ms
   * (events appended longer ago than this and not read yet make it lag). Default 5000.
   */
  readonly maxLagMs: number;
  /** The payload field holding a device's sequence number, for gap detection. Default `seq`. */
  readonly sequenceField: string;
  /** Telemetry older than this is removed, in seconds (0 keeps everything). Default 7 days. */
  readonly retentionSeconds: number;
  /**
   * Each region's `analytics` health checkpoint asks `iotdr analytics` whether it ingests that
   * region within `maxLagMs`. Default true; false leaves analytics out of the regions' health.
   */
  readonly regionCheck: boolean;
}

export interface ReplicationConfig {
  /** Run a replication link from every other region (default true). */
  readonly enabled: boolean;
  /** Changes per pull. */
  readonly batchSize: number;
  /** How long a pull waits for the peer's next change (ms). */
  readonly waitMs: number;
  /** Entities per snapshot page. */
  readonly snapshotPageSize: number;
  /** First and longest retry delay after a failure (ms); exponential with full jitter between. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** File with the bearer token (role replicator) that links present to peers; default <state>/secrets/replicator.token. */
  readonly tokenFile?: string;
  readonly tombstoneRetentionSeconds: number;
  readonly changeLogRetentionSeconds: number;
  readonly maintenanceIntervalSeconds: number;
}

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

export interface EventsConfig {
  /** Events older than this are dropped, in seconds. Default 7 days. */
  readonly retentionSeconds: number;
  /** The bus is kept under about this many bytes, oldest events dropped first. Default 1 GiB. */
  readonly maxBytes: number;
  /** SQLite `PRAGMA synchronous` of the bus. Default full. */
  readonly synchronous: SqliteSynchronous;
}

export type HealthComponent = (typeof HEALTH_COMPONENTS)[number];

export interface HttpCheckConfig {
  /** Checkpoint name, `^[a-z][a-z0-9-]{0,62}$`, unique. */
  readonly name: string;
  /** The reference design's component this service is: app, cnc or analytics. */
  readonly component: (typeof HTTP_CHECK_COMPONENTS)[number];
  /** `{region}` in it is replaced by the name of the region running the check (each region watches its own service). */
  readonly url: string;
  /** Status the service must answer. Default 200. */
  readonly expectedStatus: number;
  /** A regular expression the body must match, when given. */
  readonly bodyMatch?: string;
  /** Default: health.timeoutMs. */
  readonly timeoutMs?: number;
}

export interface HealthConfig {
  /** Each checkpoint's timeout in ms. Default 1,000. */
  readonly timeoutMs: number;
  /** Replication fails the checkpoint past these lags. Defaults 5,000 ms and 10,000 changes. */
  readonly maxLagMs: number;
  readonly maxLagChanges: number;
  /** Components whose failure fails the region; the others warn. */
  readonly critical: readonly HealthComponent[];
  /** The fresh-connect broker checkpoint: how often it connects while it passes, in ms. Default 30,000. */
  readonly connectEveryMs: number;
  /** Its own timeout (handshake and CONNACK), in ms. Default 5,000. */
  readonly connectTimeoutMs: number;
  /** HTTP checks of the application, command-and-control and analytics services. */
  readonly checks: readonly HttpCheckConfig[];
}

export type RuleActionConfig =
  | { readonly type: 'bus' }
  | { readonly type: 'republish'; readonly topic: string; readonly qos: 0 | 1 }
  | {
      readonly type: 'http';
      readonly url: string;
      readonly headers?: Readonly<Record<string, string>>;
      readonly timeoutMs: number;
      readonly maxAttempts: number;
    };

export interface RuleConfig {
  /** `^[a-zA-Z0-9_]{1,128}$`, unique. */
  readonly name: string;
  /** MQTT topic filter (+ and # wildcards) of the messages the rule takes. */
  readonly topicFilter: string;
  /** JSON fields to keep (dotted paths); absent keeps the whole payload. */
  readonly select?: readonly string[];
  readonly actions: readonly RuleActionConfig[];
  readonly enabled: boolean;
}

export interface WebhookConfig {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface FailoverConfig {
  /** Time between two probes of a region by one checker, in ms (≥ 100). Default 1,000. */
  readonly intervalMs: number;
  /** An answer later than this is slow (the region is degraded), in ms. Default 1,000. */
  readonly timeoutMs: number;
  /** A probe still unanswered after this fails (the region does not answer), in ms; ≥ timeoutMs. Default 3 × timeoutMs (failoverGiveUpMs). */
  readonly giveUpMs?: number;
  /** A region degraded for longer (seen by a quorum of checkers) is declared down, in ms. Default 15,000. */
  readonly degradedBudgetMs: number;
  /** Consecutive failed probes (seen by a quorum of checkers) that take a region down. Default 3. */
  readonly failureThreshold: number;
  /** Consecutive good probes that bring it back. Default 5. */
  readonly recoveryThreshold: number;
  /** `manual` (default): back to the primary only by `iotdr failback`; `auto`: after stablePeriodMs healthy. */
  readonly failback: (typeof FAILBACK_MODES)[number];
  readonly stablePeriodMs: number;
  /** Ids of the checkers whose majority decides; `control` is the one inside `iotdr control`. */
  readonly checkers: readonly string[];
  /** Disconnect the devices still on the old region's broker after a switch. Default when-reachable. */
  readonly disconnectOnFailover: (typeof DISCONNECT_ON_FAILOVER_MODES)[number];
  /** Called with every switch (HTTP POST, retried). */
  readonly webhooks: readonly WebhookConfig[];
}

/**
 * What `iotdr up` and `iotdr drill` do when one of their child processes (a region, analytics,
 * control, a DNS server) exits without being asked to. The delay doubles with each crash in a row.
 */
export interface SupervisionConfig {
  /** `always` (default): restart it after a delay; `never`: report it and leave it down. */
  readonly restart: (typeof SUPERVISION_RESTART_MODES)[number];
  /**
   * First delay before a restart, in ms. Longer than the failover detection
   * (failover.intervalMs × failureThreshold + timeoutMs), so the fleet has moved before a dead
   * region returns. Default 10,000.
   */
  readonly restartDelayMs: number;
  /** The longest delay the doubling reaches, in ms; ≥ restartDelayMs. Default 300,000. */
  readonly restartMaxDelayMs: number;
  /** A process that ran this long since its last start crashes with the delay back at restartDelayMs, in ms. Default 60,000. */
  readonly stableMs: number;
}

export interface IotdrConfig {
  readonly zone: string;
  readonly names: { readonly mqtt: string; readonly api: string };
  readonly dns: DnsConfig;
  readonly control: ListenerConfig;
  readonly analytics: AnalyticsConfig;
  readonly logging: { readonly level: LogLevel };
  readonly api: { readonly bodyLimit: number };
  readonly regions: readonly RegionConfig[];
  readonly replication: ReplicationConfig;
  readonly broker: BrokerConfig;
  readonly events: EventsConfig;
  readonly health: HealthConfig;
  /** Region-local topic rules, in every region; rules made over the API replicate instead. */
  readonly rules: readonly RuleConfig[];
  readonly failover: FailoverConfig;
  readonly supervision: SupervisionConfig;
}

/** How long a checker waits for an answer before the probe fails: giveUpMs, or 3 × timeoutMs. */
export function failoverGiveUpMs(failover: Pick<FailoverConfig, 'timeoutMs' | 'giveUpMs'>): number {
  return failover.giveUpMs ?? DEFAULT_FAILOVER_GIVE_UP_TIMEOUTS * failover.timeoutMs;
}

// ---------------------------------------------------------------------------------------------
// Building blocks. Each takes the sentence that says what is valid and reuses it for every issue.

/** A short, safe rendering of what the user wrote, for "got …" in messages. */
export function describeInput(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null (an empty value)';
  if (typeof input === 'string') return JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input);
  if (typeof input === 'number' || typeof input === 'boolean' || typeof input === 'bigint')
    return String(input);
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  return typeof input;
}

/** Error map: "required: X" for a missing field, "X, got Y" otherwise. */
function expecting(what: string): (issue: { input?: unknown }) => string {
  return (issue) =>
    issue.input === undefined ? `required: ${what}` : `${what}, got ${describeInput(issue.input)}`;
}

/**
 * One check for integer-ness and range, so a bad value gets one message. Not `z.int()`: its
 * non-integer issue aborts the whole parse, which would hide the cross-field problems below.
 */
function integerIn(min: number, max: number, what: string) {
  const error = expecting(what);
  return z.number({ error }).refine((n) => Number.isInteger(n) && n >= min && n <= max, { error });
}

function integerBetween(min: number, max: number, unit?: string) {
  return integerIn(
    min,
    max,
    `expected an integer between ${min} and ${max}${unit === undefined ? '' : ` (${unit})`}`,
  );
}

function integerAtLeast(min: number) {
  return integerIn(min, Number.MAX_SAFE_INTEGER, `expected an integer of at least ${min}`);
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expecting(`expected one of ${values.join(', ')}`) });
}

function matching(pattern: RegExp, what: string) {
  const error = expecting(`expected ${what}`);
  return z.string({ error }).regex(pattern, { error });
}

function nonEmptyString(what: string) {
  const error = expecting(`expected ${what}`);
  return z.string({ error }).min(1, { error });
}

/** A strict mapping: unknown keys are errors that list the valid ones. */
function section<T extends z.core.$ZodLooseShape>(shape: T) {
  const fields = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field; valid fields here are ${fields}`
        : `expected a mapping with fields ${fields}, got ${describeInput(issue.input)}`,
  });
}

const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
export const DNS_LABEL_PATTERN = new RegExp(`^${DNS_LABEL}$`);
export const DNS_NAME_PATTERN = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);
export const REGION_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const SQL_IDENTIFIER_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/** True for an IP literal, or a hostname whose last label is not all digits (that would be a mistyped IPv4). */
export function isAddress(value: string): boolean {
  if (isIP(value) !== 0) return true;
  return HOSTNAME_PATTERN.test(value) && !/(?:^|\.)\d+$/.test(value);
}

const ADDRESS_MESSAGE = 'expected an IPv4 or IPv6 address (without brackets) or a hostname';
const addressSchema = z
  .string({ error: expecting(ADDRESS_MESSAGE) })
  .refine(isAddress, { error: expecting(ADDRESS_MESSAGE) });

const portSchema = integerBetween(PORT_MIN, PORT_MAX, '0 picks a free port');

const MAX_CONNECTIONS_MESSAGE = `expected auto (derived from the machine's open files and memory) or an integer between 1 and ${BROKER_MAX_CONNECTIONS_MAX} (sessions)`;
/** One message for every wrong value, as integerIn gives. */
const maxConnectionsSchema = z
  .union([z.literal('auto'), z.number()], { error: expecting(MAX_CONNECTIONS_MESSAGE) })
  .refine((n) => n === 'auto' || (Number.isInteger(n) && n >= 1 && n <= BROKER_MAX_CONNECTIONS_MAX), {
    error: expecting(MAX_CONNECTIONS_MESSAGE),
  });

const IP_MESSAGE = 'expected an IPv4 or IPv6 literal (DNS serves it as glue, so not a hostname)';
const ipLiteralSchema = z
  .string({ error: expecting(IP_MESSAGE) })
  .refine((value) => isIP(value) !== 0, { error: expecting(IP_MESSAGE) });

function listener(address: string, port: number) {
  return { address: addressSchema.default(address), port: portSchema.default(port) };
}

const POSTGRES_URL_MESSAGE =
  'expected a postgres:// or postgresql:// URL such as postgres://iotdr@db.example.com:5432/iotdr';

/** The URL is never echoed back: it may hold the very secret the message is about. */
const postgresUrlSchema = z.string({ error: expecting(POSTGRES_URL_MESSAGE) }).superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: POSTGRES_URL_MESSAGE });
    return;
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    ctx.addIssue({ code: 'custom', message: `${POSTGRES_URL_MESSAGE}, got a ${url.protocol} URL` });
    return;
  }
  const secretParam = SECRET_URL_PARAMS.find((name) => url.searchParams.has(name));
  if (url.password !== '' || secretParam !== undefined) {
    const where = url.password !== '' ? 'a password' : `a ${secretParam} parameter`;
    ctx.addIssue({
      code: 'custom',
      message:
        `the URL carries ${where}; secrets never go in the config file: remove it from the URL, ` +
        'write the password to a file with mode 0600 and name that file in passwordFile',
    });
  }
});

const sqliteStoreSchema = section({
  engine: z.literal('sqlite'),
  path: nonEmptyString('a file path (absolute, or relative to the state directory)')
    .refine((p) => p !== ':memory:', {
      message: 'an in-memory database would lose the registry at every restart; give a file path',
    })
    .optional(),
  synchronous: oneOf(SQLITE_SYNCHRONOUS_MODES).default(DEFAULT_SQLITE_SYNCHRONOUS),
});

const postgresStoreSchema = section({
  engine: z.literal('postgres'),
  url: postgresUrlSchema,
  passwordFile: nonEmptyString('a file path (absolute, or relative to the state directory)').optional(),
  poolSize: integerBetween(POSTGRES_POOL_SIZE_MIN, POSTGRES_POOL_SIZE_MAX).default(
    DEFAULT_POSTGRES_POOL_SIZE,
  ),
  schema: matching(
    SQL_IDENTIFIER_PATTERN,
    'a lowercase SQL identifier (a-z, 0-9 and _, not starting with a digit, at most 63 characters)',
  ).optional(),
});

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const ENGINE_MESSAGE = `expected one of ${STORE_ENGINES.join(', ')}`;

/** `engine` may be left out and means sqlite, so `store: { synchronous: normal }` is enough. */
const storeSchema = z
  .preprocess(
    (value) =>
      isMapping(value) && !('engine' in value) ? { ...value, engine: DEFAULT_STORE_ENGINE } : value,
    z.discriminatedUnion('engine', [sqliteStoreSchema, postgresStoreSchema], {
      error: (issue) =>
        isMapping(issue.input)
          ? `${ENGINE_MESSAGE}, got ${describeInput(issue.input.engine)}`
          : `expected a mapping with engine ${STORE_ENGINES.join(' or ')}, got ${describeInput(issue.input)}`,
    }),
  )
  .prefault({ engine: DEFAULT_STORE_ENGINE });

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

/** host:port/db of a Redis URL, to tell two regions sharing one; undefined for what is no Redis URL. */
function redisKey(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return undefined;
    return `${url.hostname.toLowerCase()}:${url.port || '6379'}/${url.pathname.replace(/^\//, '') || '0'}`;
  } catch {
    return undefined;
  }
}

const regionSchema = section({
  name: matching(
    REGION_NAME_PATTERN,
    'a region name: a lowercase letter, then up to 62 lowercase letters, digits or hyphens',
  ),
  priority: integerAtLeast(REGION_PRIORITY_MIN),
  address: addressSchema,
  api: section({ port: portSchema.default(DEFAULT_REGION_API_PORT) }).prefault({}),
  cnc: section({
    port: portSchema.default(DEFAULT_REGION_CNC_PORT),
    tls: z.boolean({ error: expecting('expected true or false') }).default(false),
  }).prefault({}),
  mqtt: section({
    port: portSchema.default(DEFAULT_REGION_MQTT_PORT),
    tokenPort: portSchema.default(DEFAULT_REGION_MQTT_TOKEN_PORT),
  }).prefault({}),
  store: storeSchema,
  redis: section({
    url: redisUrlSchema,
    passwordFile: nonEmptyString('a file path (absolute, or relative to the state directory)').optional(),
  }).optional(),
});

const regionsSchema = z
  .array(regionSchema, { error: expecting('expected a list of regions') })
  .min(1, { error: 'expected at least one region' })
  .prefault(() => DEFAULT_REGIONS.map((region) => ({ ...region })));

const dnsLabelSchema = matching(
  DNS_LABEL_PATTERN,
  'a lowercase DNS label: letters a-z, digits and inner hyphens, 1 to 63 characters, no dots',
);

const HTTP_URL_MESSAGE = 'expected an http:// or https:// URL without user or password';
/** In a health check's URL, replaced by the name of the region that runs the check. */
export const REGION_PLACEHOLDER = '{region}';
/** In a health check's URL, replaced by the address of the region that runs the check (IPv6 in brackets). */
export const ADDRESS_PLACEHOLDER = '{address}';

const httpUrlSchema = z.string({ error: expecting(HTTP_URL_MESSAGE) }).refine(
  (value) => {
    try {
      // A placeholder stands for a region name, which is valid in a host name and in a path.
      const url = new URL(
        value.replaceAll(REGION_PLACEHOLDER, 'region').replaceAll(ADDRESS_PLACEHOLDER, 'address'),
      );
      // Credentials in a URL would end up in logs and in `config print`; none are needed here.
      return (
        (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === ''
      );
    } catch {
      return false;
    }
  },
  { error: expecting(HTTP_URL_MESSAGE) },
);

const regexSchema = z.string({ error: expecting('expected a regular expression') }).refine(
  (value) => {
    try {
      new RegExp(value);
      return true;
    } catch {
      return false;
    }
  },
  { error: expecting('expected a valid JavaScript regular expression') },
);

const httpCheckSchema = section({
  name: matching(
    REGION_NAME_PATTERN,
    'a checkpoint name: a lowercase letter, then lowercase letters, digits or hyphens',
  ),
  component: oneOf(HTTP_CHECK_COMPONENTS),
  url: httpUrlSchema,
  expectedStatus: integerBetween(100, 599, 'HTTP status').default(200),
  bodyMatch: regexSchema.optional(),
  timeoutMs: integerBetween(10, 60_000, 'ms').optional(),
});

/** MQTT topic filter: levels split by /, + alone in a level, # alone and last [MQTT-4.7.1]. */
const TOPIC_FILTER_MESSAGE =
  'an MQTT topic filter: 1 to 256 characters, + only as a whole level, # only as the whole last level';
const topicFilterSchema = z.string({ error: expecting(`expected ${TOPIC_FILTER_MESSAGE}`) }).refine(
  (value) => {
    if (value.length === 0 || Buffer.byteLength(value) > 256 || value.includes('\u0000')) return false;
    const levels = value.split('/');
    return levels.every(
      (level, i) =>
        (!level.includes('+') || level === '+') &&
        (!level.includes('#') || (level === '#' && i === levels.length - 1)),
    );
  },
  { error: expecting(`expected ${TOPIC_FILTER_MESSAGE}`) },
);
const TOPIC_MESSAGE = 'an MQTT topic: 1 to 256 characters without + or #';
const topicSchema = z
  .string({ error: expecting(`expected ${TOPIC_MESSAGE}`) })
  .refine(
    (value) =>
      value.length > 0 && Buffer.byteLength(value) <= 256 && !/[+#]/.test(value) && !value.includes('\u0000'),
    {
      error: expecting(`expected ${TOPIC_MESSAGE}`),
    },
  );

const ruleActionSchema = z.discriminatedUnion(
  'type',
  [
    section({ type: z.literal('bus') }),
    section({
      type: z.literal('republish'),
      topic: topicSchema,
      qos: z.union([z.literal(0), z.literal(1)], { error: expecting('expected 0 or 1') }).default(0),
    }),
    section({
      type: z.literal('http'),
      url: httpUrlSchema,
      headers: z
        .record(z.string(), z.string(), { error: expecting('expected a mapping of header names to values') })
        .optional(),
      timeoutMs: integerBetween(RULE_HTTP_TIMEOUT_MS.min, RULE_HTTP_TIMEOUT_MS.max, 'ms').default(5000),
      maxAttempts: integerBetween(RULE_HTTP_ATTEMPTS.min, RULE_HTTP_ATTEMPTS.max, 'attempts').default(5),
    }),
  ],
  {
    error: (issue) =>
      isMapping(issue.input)
        ? `expected type bus, republish or http, got ${describeInput(issue.input.type)}`
        : `expected a mapping with a type (bus, republish or http), got ${describeInput(issue.input)}`,
  },
);

const ruleShape = section({
  name: matching(/^[a-zA-Z0-9_]{1,128}$/, 'a rule name: 1 to 128 characters from a-z A-Z 0-9 _'),
  topicFilter: topicFilterSchema,
  select: z
    .array(
      matching(
        /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/,
        'a JSON field path such as temperature or sensor.value',
      ),
      {
        error: expecting('expected a list of JSON field paths'),
      },
    )
    .min(1, { error: 'expected at least one field, or leave select out to keep the whole payload' })
    .optional(),
  actions: z
    .array(ruleActionSchema, { error: expecting('expected a list of actions') })
    .min(1, { error: 'expected at least one action' }),
  enabled: z.boolean({ error: expecting('expected true or false') }).default(true),
});
// The rule model the region runs has the last word: what it would refuse at start, the
// configuration refuses now. It speaks once the file's own checks (in the file's terms) pass.
const ruleSchema = ruleShape.pipe(
  z.custom<z.output<typeof ruleShape>>().superRefine((rule, ctx) => {
    const model = ruleDefinitionSchema.safeParse(rule);
    if (model.success) return;
    for (const issue of model.error.issues)
      ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  }),
);

const rootShape = {
  zone: matching(
    DNS_NAME_PATTERN,
    'a lowercase DNS name such as iot.test (dot-separated labels of a-z, 0-9 and inner hyphens, no trailing dot)',
  ).default(DEFAULT_ZONE),
  names: section({
    mqtt: dnsLabelSchema.default(DEFAULT_MQTT_NAME),
    api: dnsLabelSchema.default(DEFAULT_API_NAME),
  }).prefault({}),
  dns: section({
    ...listener(DEFAULT_DNS_ADDRESS, DEFAULT_DNS_PORT),
    ttl: integerBetween(DNS_TTL_MIN, DNS_TTL_MAX, 'seconds').default(DEFAULT_DNS_TTL),
    provider: oneOf(DNS_PROVIDERS).default('builtin'),
    extraNames: z
      .array(dnsLabelSchema, { error: expecting('expected a list of DNS labels') })
      .prefault(() => []),
    powerdns: section({
      url: httpUrlSchema,
      serverId: nonEmptyString('a PowerDNS server id').default('localhost'),
      apiKeyFile: nonEmptyString('a file path (absolute, or relative to the state directory)'),
    }).optional(),
    servers: z
      .array(
        section({
          name: dnsLabelSchema,
          address: ipLiteralSchema,
          port: portSchema.default(DEFAULT_DNS_PORT),
          httpPort: portSchema.default(DEFAULT_DNS_SERVER_HTTP_PORT),
        }),
        { error: expecting('expected a list of { name, address, port, httpPort }') },
      )
      .prefault(() => []),
  }).prefault({}),
  control: section(listener(DEFAULT_CONTROL_ADDRESS, DEFAULT_CONTROL_PORT)).prefault({}),
  analytics: section({
    ...listener(DEFAULT_ANALYTICS_ADDRESS, DEFAULT_ANALYTICS_PORT),
    maxLagMs: integerBetween(100, 3_600_000, 'ms').default(DEFAULT_ANALYTICS_MAX_LAG_MS),
    sequenceField: matching(
      /^[A-Za-z_][A-Za-z0-9_]{0,63}$/,
      'a top-level JSON field name such as seq (letters, digits, underscore)',
    ).default(DEFAULT_ANALYTICS_SEQUENCE_FIELD),
    retentionSeconds: integerBetween(0, 315_360_000, 'seconds').default(DEFAULT_ANALYTICS_RETENTION_SECONDS),
    regionCheck: z.boolean({ error: expecting('expected true or false') }).default(true),
  }).prefault({}),
  logging: section({ level: oneOf(LOG_LEVELS).default(DEFAULT_LOG_LEVEL) }).prefault({}),
  api: section({
    bodyLimit: integerBetween(API_BODY_LIMIT_MIN, API_BODY_LIMIT_MAX, 'bytes').default(
      DEFAULT_API_BODY_LIMIT,
    ),
  }).prefault({}),
  regions: regionsSchema,
  replication: section({
    enabled: z.boolean({ error: expecting('expected true or false') }).default(true),
    batchSize: integerBetween(1, 10_000, 'changes').default(DEFAULT_REPLICATION_BATCH_SIZE),
    waitMs: integerBetween(0, 30_000, 'ms').default(DEFAULT_REPLICATION_WAIT_MS),
    snapshotPageSize: integerBetween(1, 5000, 'entities').default(DEFAULT_REPLICATION_SNAPSHOT_PAGE_SIZE),
    retryBaseMs: integerBetween(1, 60_000, 'ms').default(DEFAULT_REPLICATION_RETRY_BASE_MS),
    retryMaxMs: integerBetween(1, 600_000, 'ms').default(DEFAULT_REPLICATION_RETRY_MAX_MS),
    tokenFile: nonEmptyString('a file path (absolute, or relative to the state directory)').optional(),
    tombstoneRetentionSeconds: integerBetween(60, 365 * 24 * 3600, 'seconds').default(
      DEFAULT_TOMBSTONE_RETENTION_S,
    ),
    changeLogRetentionSeconds: integerBetween(60, 365 * 24 * 3600, 'seconds').default(
      DEFAULT_CHANGE_LOG_RETENTION_S,
    ),
    maintenanceIntervalSeconds: integerBetween(1, 24 * 3600, 'seconds').default(
      DEFAULT_MAINTENANCE_INTERVAL_S,
    ),
  }).prefault({}),
  broker: section({
    tokenAuth: z.boolean({ error: expecting('expected true or false') }).default(false),
    maxConnections: maxConnectionsSchema.default(DEFAULT_BROKER_MAX_CONNECTIONS),
    connectionsPerSecondPerAddress: integerBetween(1, 1_000_000, 'connections per second').default(
      DEFAULT_BROKER_CONNECTIONS_PER_SECOND_PER_ADDRESS,
    ),
    maxPayloadBytes: integerBetween(1, 256 * 1024 * 1024, 'bytes').default(DEFAULT_BROKER_MAX_PAYLOAD_BYTES),
    maxTopicLength: integerBetween(1, 65_535, 'bytes').default(DEFAULT_BROKER_MAX_TOPIC_LENGTH),
    maxTopicLevels: integerBetween(1, 100, 'levels').default(DEFAULT_BROKER_MAX_TOPIC_LEVELS),
    connectTimeoutMs: integerBetween(100, 600_000, 'ms').default(DEFAULT_BROKER_CONNECT_TIMEOUT_MS),
    workers: integerBetween(1, BROKER_WORKERS_MAX, 'processes').default(DEFAULT_BROKER_WORKERS),
    tlsTickets: section({
      rotateHours: integerBetween(
        1,
        BROKER_TLS_TICKET_ROTATE_HOURS_MAX,
        'hours; a ticket lives two periods and TLS 1.3 allows at most 7 days',
      ).default(DEFAULT_BROKER_TLS_TICKET_ROTATE_HOURS),
    }).prefault({}),
  }).prefault({}),
  events: section({
    retentionSeconds: integerBetween(60, 10 * 365 * 24 * 3600, 'seconds').default(DEFAULT_EVENTS_RETENTION_S),
    maxBytes: integerBetween(1024 * 1024, Number.MAX_SAFE_INTEGER, 'bytes').default(DEFAULT_EVENTS_MAX_BYTES),
    synchronous: oneOf(SQLITE_SYNCHRONOUS_MODES).default(DEFAULT_SQLITE_SYNCHRONOUS),
  }).prefault({}),
  health: section({
    timeoutMs: integerBetween(10, 60_000, 'ms').default(DEFAULT_HEALTH_TIMEOUT_MS),
    maxLagMs: integerBetween(1, 86_400_000, 'ms').default(DEFAULT_HEALTH_MAX_LAG_MS),
    maxLagChanges: integerBetween(1, Number.MAX_SAFE_INTEGER, 'changes').default(
      DEFAULT_HEALTH_MAX_LAG_CHANGES,
    ),
    critical: z
      .array(oneOf(HEALTH_COMPONENTS), { error: expecting('expected a list of components') })
      .prefault(() => [...DEFAULT_CRITICAL_COMPONENTS]),
    connectEveryMs: integerBetween(1000, 86_400_000, 'ms').default(DEFAULT_HEALTH_CONNECT_EVERY_MS),
    connectTimeoutMs: integerBetween(10, 60_000, 'ms').default(DEFAULT_HEALTH_CONNECT_TIMEOUT_MS),
    checks: z
      .array(httpCheckSchema, { error: expecting('expected a list of HTTP checks') })
      .prefault(() => []),
  }).prefault({}),
  rules: z
    .array(ruleSchema, { error: expecting('expected a list of rules') })
    .prefault(() => DEFAULT_RULES.map((rule) => ({ ...rule, actions: rule.actions.map((x) => ({ ...x })) }))),
  failover: section({
    intervalMs: integerBetween(100, 600_000, 'ms').default(DEFAULT_FAILOVER_INTERVAL_MS),
    timeoutMs: integerBetween(10, 60_000, 'ms').default(DEFAULT_FAILOVER_TIMEOUT_MS),
    giveUpMs: integerBetween(10, 600_000, 'ms').optional(),
    degradedBudgetMs: integerBetween(0, 86_400_000, 'ms').default(DEFAULT_FAILOVER_DEGRADED_BUDGET_MS),
    failureThreshold: integerBetween(1, 100, 'probes').default(DEFAULT_FAILURE_THRESHOLD),
    recoveryThreshold: integerBetween(1, 100, 'probes').default(DEFAULT_RECOVERY_THRESHOLD),
    failback: oneOf(FAILBACK_MODES).default('manual'),
    stablePeriodMs: integerBetween(0, 86_400_000, 'ms').default(DEFAULT_STABLE_PERIOD_MS),
    checkers: z
      .array(
        matching(
          REGION_NAME_PATTERN,
          'a checker id: a lowercase letter, then lowercase letters, digits or hyphens',
        ),
        {
          error: expecting('expected a list of checker ids'),
        },
      )
      .min(1, { error: 'expected at least one checker' })
      .prefault(() => [DEFAULT_CHECKER_ID]),
    disconnectOnFailover: oneOf(DISCONNECT_ON_FAILOVER_MODES).default('when-reachable'),
    webhooks: z
      .array(
        section({
          url: httpUrlSchema,
          headers: z
            .record(z.string(), z.string(), {
              error: expecting('expected a mapping of header names to values'),
            })
            .optional(),
        }),
        { error: expecting('expected a list of webhooks') },
      )
      .prefault(() => []),
  }).prefault({}),
  supervision: section({
    restart: oneOf(SUPERVISION_RESTART_MODES).default(DEFAULT_SUPERVISION_RESTART),
    restartDelayMs: integerBetween(100, 3_600_000, 'ms').default(DEFAULT_RESTART_DELAY_MS),
    restartMaxDelayMs: integerBetween(100, 86_400_000, 'ms').default(DEFAULT_RESTART_MAX_DELAY_MS),
    stableMs: integerBetween(0, 86_400_000, 'ms').default(DEFAULT_SUPERVISION_STABLE_MS),
  }).prefault({}),
};

// ---------------------------------------------------------------------------------------------
// Rules across fields. They run even when other fields are invalid (`when`), so one pass reports
// every problem; each rule therefore looks only at values that are valid on their own.

type Path = (string | number)[];
interface CrossIssue {
  path: Path;
  message: string;
}

function valid<T>(schema: z.ZodType<T>, value: unknown): value is T {
  return schema.safeParse(value).success;
}

function field(value: unknown, ...keys: (string | number)[]): unknown {
  let current = value;
  for (const key of keys) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

/** Canonical form of an address so `::1` and `0:0::1` compare equal. */
function addressKey(address: string): string {
  if (isIP(address) === 6) return new URL(`http://[${address.replace(/%.*$/, '')}]`).hostname;
  return address.toLowerCase();
}

function crossFieldIssues(config: unknown): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const zone = field(config, 'zone');
  for (const kind of ['mqtt', 'api'] as const) {
    const label = field(config, 'names', kind);
    if (valid(rootShape.zone, zone) && valid(dnsLabelSchema, label) && `${label}.${zone}`.length > 253) {
      issues.push({
        path: ['names', kind],
        message: `${label}.${zone} is longer than the 253 characters DNS allows`,
      });
    }
  }
  const mqttName = field(config, 'names', 'mqtt');
  if (typeof mqttName === 'string' && mqttName === field(config, 'names', 'api')) {
    issues.push({ path: ['names', 'api'], message: `must differ from names.mqtt (both are "${mqttName}")` });
  }

  const regions = field(config, 'regions');
  const list = Array.isArray(regions) ? regions : [];
  const names = new Map<string, number>();
  const priorities = new Map<number, number>();
  const sqlitePaths = new Map<string, number>();
  list.forEach((region, i) => {
    const name = field(region, 'name');
    if (valid(regionSchema.shape.name, name)) {
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else
        issues.push({
          path: ['regions', i, 'name'],
          message: `"${name}" is already the name of regions.${first}`,
        });
    }
    const priority = field(region, 'priority');
    if (valid(regionSchema.shape.priority, priority)) {
      const first = priorities.get(priority);
      if (first === undefined) priorities.set(priority, i);
      else
        issues.push({
          path: ['regions', i, 'priority'],
          message: `priority ${priority} is already taken by regions.${first}; every region needs its own priority (lower is preferred)`,
        });
    }
    const address = field(region, 'address');
    if (typeof address === 'string' && isAddress(address)) {
      const ip = isIP(address) === 0 ? undefined : addressKey(address);
      if (ip === '0.0.0.0' || ip === '::') {
        issues.push({
          path: ['regions', i, 'address'],
          message: `${address} is a wildcard; a region's address is what DNS gives devices, so it must be reachable`,
        });
      }
    }
    const store = field(region, 'store');
    if (field(store, 'engine') === 'sqlite') {
      const path = field(store, 'path');
      if (typeof path === 'string') {
        const first = sqlitePaths.get(path);
        if (first === undefined) sqlitePaths.set(path, i);
        else
          issues.push({
            path: ['regions', i, 'store', 'path'],
            message: `"${path}" is already the database of regions.${first}; each region needs its own`,
          });
      }
    }
  });

  // Workers share messages and sessions through the region's Redis; regions never share one.
  const workers = field(config, 'broker', 'workers');
  const redisUrls = new Map<string, number>();
  list.forEach((region, i) => {
    const url = field(region, 'redis', 'url');
    if (typeof workers === 'number' && workers > 1 && url === undefined)
      issues.push({
        path: ['regions', i, 'redis'],
        message: `broker.workers is ${workers}: the region needs its own redis ({url: redis://host:port/db}) for the workers to share`,
      });
    const key = typeof url === 'string' ? redisKey(url) : undefined;
    if (key === undefined) return;
    const first = redisUrls.get(key);
    if (first === undefined) redisUrls.set(key, i);
    else
      issues.push({
        path: ['regions', i, 'redis', 'url'],
        message: `the same Redis database as regions.${first}; each region needs its own (another server or database number)`,
      });
  });

  // Every TCP listener on one (address, port) at most. DNS listens on TCP as well as UDP.
  const listeners: { path: Path; address: unknown; port: unknown }[] = [
    { path: ['dns', 'port'], address: field(config, 'dns', 'address'), port: field(config, 'dns', 'port') },
    {
      path: ['control', 'port'],
      address: field(config, 'control', 'address'),
      port: field(config, 'control', 'port'),
    },
    {
      path: ['analytics', 'port'],
      address: field(config, 'analytics', 'address'),
      port: field(config, 'analytics', 'port'),
    },
  ];
  const tokenAuth = field(config, 'broker', 'tokenAuth') === true;
  list.forEach((region, i) => {
    for (const kind of ['api', 'mqtt'] as const) {
      listeners.push({
        path: ['regions', i, kind, 'port'],
        address: field(region, 'address'),
        port: field(region, kind, 'port'),
      });
    }
    listeners.push({
      path: ['regions', i, 'cnc', 'port'],
      address: field(region, 'address'),
      port: field(region, 'cnc', 'port') ?? DEFAULT_REGION_CNC_PORT,
    });
    if (tokenAuth) {
      listeners.push({
        path: ['regions', i, 'mqtt', 'tokenPort'],
        address: field(region, 'address'),
        port: field(region, 'mqtt', 'tokenPort') ?? DEFAULT_REGION_MQTT_TOKEN_PORT,
      });
    }
  });
  const servers = field(config, 'dns', 'servers');
  if (Array.isArray(servers)) {
    const reserved = new Map<string, string>([[CONTROL_NAMESERVER, "iotdr control's own name server"]]);
    for (const key of ['mqtt', 'api'] as const) {
      const label = field(config, 'names', key) ?? (key === 'mqtt' ? DEFAULT_MQTT_NAME : DEFAULT_API_NAME);
      if (typeof label === 'string') reserved.set(label, `names.${key}`);
    }
    const extra = field(config, 'dns', 'extraNames');
    if (Array.isArray(extra)) for (const label of extra) reserved.set(String(label), 'dns.extraNames');
    servers.forEach((server, i) => {
      const name = field(server, 'name');
      if (typeof name !== 'string') return;
      const taken = reserved.get(name);
      if (taken !== undefined)
        issues.push({
          path: ['dns', 'servers', i, 'name'],
          message: `"${name}" is already ${taken}; each name server needs a label of its own`,
        });
      else reserved.set(name, `dns.servers.${i}`);
      for (const [kind, key] of [
        ['port', 'port'],
        ['httpPort', 'httpPort'],
      ] as const)
        listeners.push({
          path: ['dns', 'servers', i, kind],
          address: field(server, 'address'),
          port: field(server, key) ?? (kind === 'port' ? DEFAULT_DNS_PORT : DEFAULT_DNS_SERVER_HTTP_PORT),
        });
    });
  }

  const taken = new Map<string, Path>();
  for (const { path, address, port } of listeners) {
    // Port 0 is a fresh ephemeral port every time: it never collides.
    if (typeof address !== 'string' || !isAddress(address) || !valid(portSchema, port) || port === 0)
      continue;
    const key = `${addressKey(address)} ${port}`;
    const first = taken.get(key);
    if (first === undefined) taken.set(key, path);
    else
      issues.push({
        path,
        message: `${address}:${port} is already used by ${first.join('.')}; each listener needs its own address and port`,
      });
  }

  if (field(config, 'dns', 'provider') === 'powerdns' && field(config, 'dns', 'powerdns') === undefined) {
    issues.push({
      path: ['dns', 'powerdns'],
      message: 'required with provider powerdns: { url, apiKeyFile } of the PowerDNS API',
    });
  }

  const timeout = field(config, 'failover', 'timeoutMs');
  const giveUp = field(config, 'failover', 'giveUpMs');
  if (typeof timeout === 'number' && typeof giveUp === 'number' && giveUp < timeout)
    issues.push({
      path: ['failover', 'giveUpMs'],
      message: `${giveUp} is below failover.timeoutMs (${timeout}); a probe can only be given up after it is late`,
    });

  const checkers = field(config, 'failover', 'checkers');
  if (Array.isArray(checkers)) {
    checkers.forEach((id, i) => {
      const first = checkers.indexOf(id);
      if (typeof id === 'string' && first !== i)
        issues.push({
          path: ['failover', 'checkers', i],
          message: `"${id}" is already failover.checkers.${first}; each checker votes once`,
        });
    });
  }

  // A whole section, defaults filled in: compared only once it is valid on its own.
  const supervision = rootShape.supervision.safeParse(field(config, 'supervision'));
  if (supervision.success) {
    const { restartDelayMs, restartMaxDelayMs } = supervision.data;
    if (restartMaxDelayMs < restartDelayMs)
      issues.push({
        path: ['supervision', 'restartMaxDelayMs'],
        message: `${restartMaxDelayMs} is below supervision.restartDelayMs (${restartDelayMs}); expected at least the first delay`,
      });
  }

  // Names that must be unique within their list: health checks, rules.
  for (const path of [['health', 'checks'], ['rules']] as const) {
    const items = field(config, ...path);
    const seen = new Map<string, number>();
    (Array.isArray(items) ? items : []).forEach((item, i) => {
      const name = field(item, 'name');
      if (typeof name !== 'string') return;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, i);
      else
        issues.push({
          path: [...path, i, 'name'],
          message: `"${name}" is already the name of ${path.join('.')}.${first}; names must be unique`,
        });
    });
  }
  return issues;
}

export const configSchema = section(rootShape).superRefine(
  (config, ctx) => {
    for (const issue of crossFieldIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
  },
  { when: () => true },
);

// The hand-written types above are the documentation; this fails to compile if they drift from the schema.
type DeepReadonly<T> = T extends (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type _SchemaMatchesTypes = Assert<Same<DeepReadonly<z.output<typeof configSchema>>, IotdrConfig>>;

/**
 * The `health` section of the configuration (docs/health.md): checkpoint timeouts, the lags that
 * fail replication, which components fail the region, and the HTTP checks of the services beside
 * it. The checkpoints fall back to the same defaults.
 */
import { z } from 'zod';
import {
  expecting,
  httpUrl,
  integerWithin,
  matching,
  oneOf,
  type Range,
  REGION_NAME_PATTERN,
  section,
} from '../common/index.js';

/** The reference design's monitored components (docs/architecture.md §5.3). */
export const HEALTH_COMPONENTS = [
  'broker',
  'registry',
  'replication',
  'events',
  'app',
  'cnc',
  'analytics',
] as const;
export type HealthComponent = (typeof HEALTH_COMPONENTS)[number];
/** Components whose failing checkpoint fails the region by default; the others only warn. */
export const DEFAULT_CRITICAL_COMPONENTS = [
  'broker',
  'registry',
  'events',
  'app',
  'cnc',
  'analytics',
] as const satisfies readonly HealthComponent[];
/** The components an HTTP check may stand for: the reference design's other services. */
export const HTTP_CHECK_COMPONENTS = [
  'app',
  'cnc',
  'analytics',
] as const satisfies readonly HealthComponent[];

/** Each checkpoint's timeout unless it sets its own, in ms; the answer comes within it plus a margin. Default 1,000. */
export const DEFAULT_CHECKPOINT_TIMEOUT_MS = 1000;
/** A replication link further behind than this fails, in ms. Default 5,000. */
export const DEFAULT_MAX_LAG_MS = 5000;
/** A replication link with more of the peer's changes left to apply than this fails. Default 10,000. */
export const DEFAULT_MAX_LAG_CHANGES = 10_000;
/**
 * The fresh-connect broker checkpoint (a full mutual-TLS handshake and CONNACK) runs in the
 * background this often while it passes, in ms; requests never wait for it. Default 30,000.
 */
export const DEFAULT_CONNECT_EVERY_MS = 30_000;
/** Its own timeout, in ms. Default 5,000. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/**
 * A checkpoint's result is answered as is within this many ms of its run's start: `GET /health`,
 * called by anyone and without a token, costs the region at most one run of each checkpoint per
 * window however often it is called. Default 500.
 */
export const DEFAULT_HEALTH_CACHE_MS = 500;
/** The status an HTTP check expects. Default 200. */
export const DEFAULT_EXPECTED_STATUS = 200;

/** In a health check's URL, replaced by the name of the region that runs the check. */
export const REGION_PLACEHOLDER = '{region}';
/** In a health check's URL, replaced by the address of the region that runs the check (IPv6 in brackets). */
export const ADDRESS_PLACEHOLDER = '{address}';

/** Bounds of the section's numbers, inclusive; keys are paths within the section. */
export const HEALTH_LIMITS = {
  /** ms. */
  timeoutMs: { min: 10, max: 60_000 },
  /** ms: up to a day. */
  maxLagMs: { min: 1, max: 86_400_000 },
  /** Changes. */
  maxLagChanges: { min: 1, max: Number.MAX_SAFE_INTEGER },
  /** ms: a second to a day. */
  connectEveryMs: { min: 1000, max: 86_400_000 },
  /** ms. */
  connectTimeoutMs: { min: 10, max: 60_000 },
  /** ms: 0 runs the checkpoints at every request (concurrent ones still share a run). */
  cacheMs: { min: 0, max: 60_000 },
  /** An HTTP status. */
  'checks[].expectedStatus': { min: 100, max: 599 },
  /** ms. */
  'checks[].timeoutMs': { min: 10, max: 60_000 },
} as const satisfies Record<string, Range>;

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
  /** A result younger than this is answered as is, in ms; see healthCacheWindowMs. Default 500. */
  readonly cacheMs: number;
  /** HTTP checks of the application, command-and-control and analytics services. */
  readonly checks: readonly HttpCheckConfig[];
}

/** A placeholder stands for a region name or address, valid in a host name and in a path. */
const checkUrlSchema = httpUrl((value) =>
  value.replaceAll(REGION_PLACEHOLDER, 'region').replaceAll(ADDRESS_PLACEHOLDER, 'address'),
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

const L = HEALTH_LIMITS;

const httpCheckSchema = section({
  name: matching(
    REGION_NAME_PATTERN,
    'a checkpoint name: a lowercase letter, then lowercase letters, digits or hyphens',
  ),
  component: oneOf(HTTP_CHECK_COMPONENTS),
  url: checkUrlSchema,
  expectedStatus: integerWithin(L['checks[].expectedStatus'], 'HTTP status').default(DEFAULT_EXPECTED_STATUS),
  bodyMatch: regexSchema.optional(),
  timeoutMs: integerWithin(L['checks[].timeoutMs'], 'ms').optional(),
});

export const healthSection = section({
  timeoutMs: integerWithin(L.timeoutMs, 'ms').default(DEFAULT_CHECKPOINT_TIMEOUT_MS),
  maxLagMs: integerWithin(L.maxLagMs, 'ms').default(DEFAULT_MAX_LAG_MS),
  maxLagChanges: integerWithin(L.maxLagChanges, 'changes').default(DEFAULT_MAX_LAG_CHANGES),
  critical: z
    .array(oneOf(HEALTH_COMPONENTS), { error: expecting('expected a list of components') })
    .prefault(() => [...DEFAULT_CRITICAL_COMPONENTS]),
  connectEveryMs: integerWithin(L.connectEveryMs, 'ms').default(DEFAULT_CONNECT_EVERY_MS),
  connectTimeoutMs: integerWithin(L.connectTimeoutMs, 'ms').default(DEFAULT_CONNECT_TIMEOUT_MS),
  cacheMs: integerWithin(L.cacheMs, 'ms').default(DEFAULT_HEALTH_CACHE_MS),
  checks: z.array(httpCheckSchema, { error: expecting('expected a list of HTTP checks') }).prefault(() => []),
}).prefault({});

/**
 * The cache window a region uses: `health.cacheMs`, but at most half the checkers' interval
 * (`failover.intervalMs`). A checker's next probe starts an interval after its previous one, so it
 * is always answered by a run started after its previous probe: failing probes counted towards
 * `failureThreshold` are distinct runs, and the window adds at most itself to the time it takes
 * to see a region fail (docs/health.md).
 */
export function healthCacheWindowMs(cacheMs: number, checkIntervalMs: number): number {
  return Math.max(0, Math.min(cacheMs, Math.floor(checkIntervalMs / 2)));
}

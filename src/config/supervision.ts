/**
 * The `supervision` section: what `iotdr up` and `iotdr drill` do when one of their child
 * processes exits without being asked to. The platform's own section (src/processes reads it),
 * so it stays with the configuration.
 */
import { integerWithin, oneOf, type Range, section } from '../common/index.js';

export const SUPERVISION_RESTART_MODES = ['always', 'never'] as const;
/** Default `always`: restart a dead process after the delay. */
export const DEFAULT_SUPERVISION_RESTART = 'always';
/**
 * First restart delay, in ms. Longer than the default failover detection (1,000 × 3 + 1,000), so a
 * dead region is seen down and the fleet moved before it returns. Default 10,000.
 */
export const DEFAULT_RESTART_DELAY_MS = 10_000;
/** The longest delay the doubling reaches, in ms. Default 300,000. */
export const DEFAULT_RESTART_MAX_DELAY_MS = 300_000;
/** A process up this long since its last start has its restart delay back at restartDelayMs, in ms. Default 60,000. */
export const DEFAULT_SUPERVISION_STABLE_MS = 60_000;

/** Bounds of the section's numbers, inclusive. */
export const SUPERVISION_LIMITS = {
  /** ms: 100 ms to an hour. */
  restartDelayMs: { min: 100, max: 3_600_000 },
  /** ms: 100 ms to a day; at least restartDelayMs as well. */
  restartMaxDelayMs: { min: 100, max: 86_400_000 },
  /** ms: 0 to a day. */
  stableMs: { min: 0, max: 86_400_000 },
} as const satisfies Record<string, Range>;

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

const L = SUPERVISION_LIMITS;

export const supervisionSection = section({
  restart: oneOf(SUPERVISION_RESTART_MODES).default(DEFAULT_SUPERVISION_RESTART),
  restartDelayMs: integerWithin(L.restartDelayMs, 'ms').default(DEFAULT_RESTART_DELAY_MS),
  restartMaxDelayMs: integerWithin(L.restartMaxDelayMs, 'ms').default(DEFAULT_RESTART_MAX_DELAY_MS),
  stableMs: integerWithin(L.stableMs, 'ms').default(DEFAULT_SUPERVISION_STABLE_MS),
}).prefault({});

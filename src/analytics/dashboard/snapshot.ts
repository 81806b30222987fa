import type { DeviceSummary, IngestStatus } from '../types.js';

/** A health status as a region reports it (draft-inadarei-api-health-check). */
export type CheckStatus = 'pass' | 'warn' | 'fail';

/** The active region as the controller last told us. */
export interface ActiveView {
  readonly region: string;
  readonly epoch: number;
  /** `holding`, `health` or `override` (docs/failover.md). */
  readonly mode: string;
  readonly noHealthyRegion: boolean;
  /** When the controller made the decision in force, ms since the epoch. */
  readonly decidedAt: number;
  /** A higher-priority healthy region waiting for a manual failback, or null. */
  readonly failbackAvailable: string | null;
}

export interface ControlView {
  readonly reachable: boolean;
  /** Why the last poll of the controller failed. */
  readonly error?: string;
  readonly lastContactAt: number | null;
}

export interface RegionHealthView {
  /** The region's overall status; `unreachable` when /health did not answer in its format. */
  readonly status: CheckStatus | 'unreachable' | 'unknown';
  /** Worst status per component (the part of each `checks` key before the colon). */
  readonly components: Readonly<Record<string, CheckStatus>>;
  readonly output?: string;
  readonly checkedAt: number | null;
}

export interface ReplicationLinkView {
  readonly peer: string;
  /** The link state's `type`: starting, bootstrapping, tailing, retrying, stopped. */
  readonly state: string;
  readonly lagChanges: number | null;
  readonly lagMs: number | null;
}

export interface RegionView {
  readonly name: string;
  readonly priority: number;
  /** The highest-priority region is the primary; the others are secondaries. */
  readonly role: 'primary' | 'secondary';
  /**
   * The controller's verdict on the region (quorum of checkers), or null when control is unknown;
   * `degraded`: serving but answering slowly, moved only if that lasts past the degraded budget.
   */
  readonly controllerStatus: 'up' | 'down' | 'unknown' | 'degraded' | null;
  readonly health: RegionHealthView;
  /** Live device sessions (`GET /v1/connections`); null until known or while unreachable. */
  readonly connected: number | null;
  readonly replication: readonly ReplicationLinkView[];
  /** How analytics ingests this region's bus; null when analytics does not know the region. */
  readonly ingest: IngestStatus | null;
  /** The sources of this card that failed at their last poll, with why. */
  readonly errors: Readonly<Partial<Record<'health' | 'connections' | 'replication', string>>>;
}

/** One switch of the decision log, with the time of each RTO factor (ms since the epoch or null). */
export interface SwitchView {
  readonly seq: number;
  readonly at: number;
  readonly from: string | null;
  readonly to: string;
  readonly epoch: number;
  /** health, auto-failback, manual or failback. */
  readonly trigger: string;
  readonly who?: string;
  readonly reason?: string;
  readonly timings: Readonly<Record<string, number | null>>;
}

/** Everything the page shows, as one JSON document: `event: snapshot` of GET /v1/live. */
export interface LiveSnapshot {
  /** When this snapshot was built, ms since the epoch. */
  readonly at: number;
  readonly zone: string;
  readonly active: ActiveView | null;
  readonly control: ControlView;
  readonly regions: readonly RegionView[];
  /** Per region, `[second, messages]` for each of the last 60 full seconds, oldest first (zeros included). */
  readonly rates: Readonly<Record<string, ReadonlyArray<readonly [number, number]>>>;
  /** The latest switches (at most 10), newest first. */
  readonly switches: readonly SwitchView[];
  /** Devices missing sequence numbers (at most 20), by name. */
  readonly gapDevices: readonly DeviceSummary[];
  /** Why the last read of analytics' own store failed, when it did. */
  readonly analyticsError?: string;
}

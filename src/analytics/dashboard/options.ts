import type { Clock, Logger, Timers } from '../../common/index.js';
import type { ControlClient } from '../../failover/index.js';
import type { AnalyticsQueries } from '../types.js';
import type { PeerAccess } from './sources.js';

/** What the live view reads of the fleet's configuration; the parsed configuration is one. */
export interface DashboardFleet {
  /** The fleet's DNS zone. */
  readonly zone: string;
  /** Every region, by name and priority (lower is preferred). */
  readonly regions: readonly { readonly name: string; readonly priority: number }[];
}

/** How often the controller's state is read, ms: the active region on the page follows within this. */
export const DEFAULT_CONTROL_POLL_MS = 500;
/** How often each region's /health, sessions and replication links are read, ms. */
export const DEFAULT_REGION_POLL_MS = 1000;
/** How often analytics' own store is read (rates, timeline, gaps, ingestion), ms. */
export const DEFAULT_QUERY_POLL_MS = 1000;
/** Longest wait for one read of another process, ms (a region's /health may take its whole budget). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 2500;
/** Longest wait for control's answer to a routing control, ms (it answers after the switch is recorded). */
export const DEFAULT_ROUTING_TIMEOUT_MS = 30_000;
/** Live-view clients served at once; more get 503. */
export const DEFAULT_MAX_CLIENTS = 100;
/** Live-view streams one token may hold at once; more get 429. */
export const DEFAULT_MAX_CLIENTS_PER_TOKEN = 10;
/** A client is sent the current snapshot at least this often, ms, even when nothing changed. */
export const DEFAULT_RESEND_MS = 1000;
/** An SSE comment is sent this often, ms, so proxies and browsers keep an idle stream open. */
export const DEFAULT_HEARTBEAT_MS = 15_000;
/** Seconds of message rates in a snapshot. */
export const RATE_WINDOW_SECONDS = 60;
/** Switches in a snapshot, newest first. */
export const MAX_SWITCHES = 10;
/** Devices with gaps in a snapshot. */
export const MAX_GAP_DEVICES = 20;

/** What the live view reads, and how often. */
export interface LiveViewOptions {
  queries: AnalyticsQueries;
  /** The zone and the regions (names, priorities) come from here. */
  config: DashboardFleet;
  /**
   * How the live view reads each region (by name): analytics' site agent for that region over
   * mutual TLS, or the analytics token (reader) on plain loopback links.
   */
  access: (region: string) => PeerAccess;
  /**
   * Every control node, as the live view reads the controller's state from whichever answers:
   * analytics' site agent for each node over mutual TLS, or the analytics token (reader).
   */
  control: ControlClient;
  /** Base URL of each region's API by region name, e.g. {"us-east": "http://127.0.0.11:8080"}. */
  regionUrls: Record<string, string>;
  logger: Logger;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: the system's timers. */
  timers?: Timers;
  /** Interval of the controller reads, ms. Default 500. */
  pollMs?: number;
  /** Interval of each region's reads, ms. Default 1000. */
  regionPollMs?: number;
  /** Interval of the analytics store reads, ms. Default 1000. */
  queryPollMs?: number;
  /** Timeout of one read of another process, ms. Default 2500. */
  requestTimeoutMs?: number;
}

/** `dashboardRoutes` options: the live view's, and the limits of the routes themselves. */
export interface DashboardOptions extends LiveViewOptions {
  /** Live-view (SSE) clients at once; more get 503. Default 100. */
  maxClients?: number;
  /** Live-view clients of one token at once; more get 429. Default 10. */
  maxClientsPerToken?: number;
  /**
   * Names the server answers to besides the address a request came in on (and `localhost` on
   * loopback): `analyticsHosts(config.analytics)`. Any other Host gets 421. Default none.
   */
  allowedHosts?: readonly string[];
  /** Longest a client goes without a snapshot, ms. Default 1000. */
  resendMs?: number;
  /** Interval of SSE heartbeat comments, ms. Default 15,000. */
  heartbeatMs?: number;
  /**
   * Every control node, as a routing control is forwarded to whichever answers: no token of its
   * own (the operator's goes with each request) and only the CA to verify each node by.
   */
  forwardTo: ControlClient;
  /** Timeout of a forwarded routing control at one control node, ms. Default 30,000. */
  routingTimeoutMs?: number;
}

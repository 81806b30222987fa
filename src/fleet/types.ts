/** What the fleet's coordinator and its worker threads say to each other, and what it reports. */

export type DeviceAuth = { type: 'mtls'; certPem: string; keyPem: string } | { type: 'token'; token: string };

export interface FleetDevice {
  thingName: string;
  auth: DeviceAuth;
}

/** What a worker thread needs to run its share of the fleet. */
export interface WorkerSetup {
  /** Each with the local address its connections leave from, when the fleet spreads them. */
  devices: Array<FleetDevice & { localAddress?: string }>;
  zone: string;
  caPem: string;
  /** The DNS servers devices resolve `mqtt.<zone>` with (host:port). */
  dnsServers: string[];
  /** Broker port: the mTLS port, or the token listener's. */
  port: number;
  /** Messages per second per device (may be fractional). */
  ratePerDevice: number;
  /** Folder of the devices' queue files. */
  queueDir: string;
  /** DNS re-check interval of each device, ms. */
  dnsRecheckMs: number;
  backoff: { baseMs: number; capMs: number };
  /** Time between two devices of this worker starting, ms (0: all at once). */
  startSpacingMs: number;
  /** Region names by broker address, for a device whose DNS answer came without the TXT record. */
  regionsByAddress: Record<string, string>;
}

/** One device as the coordinator knows it; times are ms since the epoch. */
export interface DeviceRecord {
  thingName: string;
  /** The region it is connected to now; null while disconnected. */
  region: string | null;
  connectedAt: number | null;
  /** Its latest disconnection, and the connect that followed it (null while down). */
  disconnectedAt: number | null;
  reconnectedAt: number | null;
  /** The first PUBACK after the latest connect: the device publishes through that region. */
  firstAckAt: number | null;
  /** Whether the latest connect resumed an earlier TLS session (an abbreviated handshake). */
  resumed: boolean;
  /** Messages accepted (on its queue), acknowledged by a broker, and waiting. */
  accepted: number;
  acked: number;
  queueDepth: number;
  /** The highest sequence number accepted so far (they start at 1). */
  lastSeq: number;
  moves: number;
  /** Failed connects since the device started, by why they failed (see retryCause). */
  retries: Record<RetryCause, number>;
  /** Time the device's backoff waited before its retries, ms, in all. */
  backoffMs: number;
}

/**
 * Why a connect failed, as a fleet counts it: no answer in the connect timeout; the connection
 * closed or reset before CONNACK (a broker's full line, or a broker going away); nothing listening
 * (refused at TCP); a CONNACK refusing it; DNS; anything else.
 */
export type RetryCause = 'timeout' | 'closed' | 'unreachable' | 'refused' | 'dns' | 'other';

export const RETRY_CAUSES: readonly RetryCause[] = [
  'timeout',
  'closed',
  'unreachable',
  'refused',
  'dns',
  'other',
];

/** The cause of a failed connect, from the error the device client reported with its retry. */
export function retryCause(error: string): RetryCause {
  const e = error.toLowerCase();
  if (e.startsWith('resolving ') || e.includes('the name moved')) return 'dns';
  if (e.includes('timeout') || e.includes('timed out')) return 'timeout';
  if (e.includes('econnrefused') || e.includes('ehostunreach') || e.includes('enetunreach'))
    return 'unreachable';
  if (e.includes('connection refused') || e.includes('not authorized') || e.includes('unavailable'))
    return 'refused';
  if (
    e.includes('closed') ||
    e.includes('disconnected') ||
    e.includes('econnreset') ||
    e.includes('socket hang up') ||
    e.includes('epipe')
  )
    return 'closed';
  return 'other';
}

export type WorkerCommand = { type: 'pause' } | { type: 'resume' } | { type: 'stop' };

export type WorkerReport =
  | { type: 'ready'; devices: number }
  | { type: 'records'; records: DeviceRecord[] }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

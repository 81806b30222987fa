import type { ActiveRegion } from '../state.js';

/**
 * "Make the fleet's names point at region X with epoch N." The failover controller talks to DNS
 * only through this interface; every implementation passes the shared suite in
 * test/dns/provider-suite.ts.
 */
export interface DnsProvider {
  /** `builtin`, `powerdns`, … for logs and status. */
  readonly kind: string;
  /**
   * Points `mqtt.<zone>`, `api.<zone>` and the extra names at `active.address` (A for IPv4, AAAA
   * for IPv6, the other type removed) and sets the `_iotdr.mqtt.<zone>` TXT. Idempotent for the
   * decision already served; a lower epoch, or the same epoch for another region, is refused with
   * `StaleEpochError` and changes nothing. Invalid input throws `ValidationError`.
   */
  apply(active: ActiveRegion): Promise<void>;
  /** The decision the DNS serves now, read back from it; undefined when it serves none. */
  current(): Promise<ActiveRegion | undefined>;
  /** Releases what the provider holds (HTTP agents, timers); the DNS keeps serving. */
  close(): Promise<void>;
}

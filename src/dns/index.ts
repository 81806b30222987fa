/**
 * The authoritative DNS of the fleet's zone (docs/architecture.md §4.11): engine, socket edges and
 * providers.
 */

export {
  CONTROL_NAMESERVER,
  DEFAULT_DNS_ADDRESS,
  DEFAULT_DNS_PORT,
  DEFAULT_DNS_PROVIDER,
  DEFAULT_DNS_SERVER_HTTP_PORT,
  DEFAULT_DNS_TTL,
  DEFAULT_POWERDNS_SERVER_ID,
  DNS_LIMITS,
  DNS_PROVIDERS,
  type DnsConfig,
  type DnsServerConfig,
  dnsSection,
  type PowerDnsConfig,
} from './config.js';
export {
  DECISION_ROUTE,
  type FollowedDecision,
  followedDecisionSchema,
  MAX_DECISION_WAIT_MS,
} from './contracts.js';
export { DnsEngine, type DnsEngineOptions, type DropReason, type Outcome, type Transport } from './engine.js';
export { DNS_ERRORS, DnsError, ProviderError, StaleEpochError } from './errors.js';
export {
  type ControllerLink,
  type ControlNodeStatus,
  DEFAULT_FOLLOW_RETRY,
  DEFAULT_FOLLOW_SLACK_MS,
  DEFAULT_FOLLOW_WAIT_MS,
  DnsFollower,
  type DnsFollowerOptions,
  type FollowedControlNode,
  type FollowerStatus,
} from './follower.js';
export { DnsMetrics } from './metrics.js';
export { BuiltinDnsProvider, type BuiltinProviderOptions } from './providers/builtin.js';
export {
  DEFAULT_POWERDNS_TIMEOUT_MS,
  PowerDnsProvider,
  type PowerDnsProviderOptions,
} from './providers/powerdns.js';
export type { DnsProvider } from './providers/types.js';
export {
  DEFAULT_TCP_IDLE_TIMEOUT_MS,
  DEFAULT_TCP_MAX_CONNECTIONS,
  DnsServer,
  type DnsServerAddress,
  type DnsServerOptions,
} from './server/server.js';
export {
  type ActiveRegion,
  activeRegionSchema,
  addressType,
  DEFAULT_APEX_TTL,
  DEFAULT_HOSTMASTER,
  DEFAULT_SOA_EXPIRE,
  DEFAULT_SOA_REFRESH,
  DEFAULT_SOA_RETRY,
  type DnsState,
  type DnsStateInput,
  type NameServer,
  parseDnsState,
  parseStatusText,
  type SoaSettings,
  STATUS_LABEL,
  statusText,
} from './state.js';
export { systemTimers, type Timers } from './timers.js';
export { CLASSIC_UDP_LIMIT, DEFAULT_UDP_PAYLOAD_SIZE, RCODE, type Rcode } from './wire.js';

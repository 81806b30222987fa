// Each section's type, defaults and schema live with its component (src/<component>/config.ts);
// the types are re-exported here for whoever holds the whole configuration.
export type { AnalyticsConfig } from '../analytics/index.js';
export type { BrokerConfig, RedisConfig } from '../broker/index.js';
export type { ListenerConfig, LogLevel } from '../common/index.js';
export type { ControlConfig, ControlNodeConfig, EtcdConfig, EtcdMemberConfig } from '../control/index.js';
export {
  DEFAULT_CONTROL_ADDRESS,
  DEFAULT_CONTROL_PORT,
} from '../control/index.js';
export type { DnsConfig, DnsServerConfig, PowerDnsConfig } from '../dns/index.js';
export type { EventsConfig } from '../events/index.js';
export type { FailoverConfig, WebhookConfig } from '../failover/index.js';
export type { HealthComponent, HealthConfig, HttpCheckConfig } from '../health/index.js';
export type {
  PostgresStoreConfig,
  SqliteStoreConfig,
  SqliteSynchronous,
  StoreConfig,
} from '../registry/index.js';
export type { ReplicationConfig } from '../replication/index.js';
export type { RuleActionConfig, RuleConfig } from '../rules/index.js';
export {
  DEFAULT_LINK_MODE,
  DEFAULT_SITE_CERTIFICATE_DAYS,
  DEFAULT_SITE_RENEW_BEFORE_DAYS,
  DEFAULT_ZONE,
  FLEET_LIMITS,
  LINK_MODES,
  type LinkMode,
} from './fleet.js';
export {
  adminTokenPath,
  analyticsTokenPath,
  analyticsUrlOf,
  apiUrlOf,
  type ControlNode,
  caCertPath,
  checkerTokenPath,
  controlNodeOf,
  controlNodesAt,
  controlNodesOf,
  controlProcessName,
  controlUrlOf,
  controlUrlsOf,
  dnsTokenPath,
  embeddedNats,
  etcdEndpointsOf,
  etcdProcessName,
  failoverCheckersOf,
  linkScheme,
  nameServerStatePath,
  nameServersOf,
  natsProcessName,
  natsServersOf,
  natsSiteOf,
  replicatorTokenPath,
  SOLE_CONTROL_NODE,
  siteCertificatePaths,
  tlsTicketSecretPath,
} from './layout.js';
export type { LoadConfigOptions, LoadedConfig } from './load.js';
export {
  DEFAULT_CONFIG_FILE,
  DEFAULT_STATE_DIR,
  DEFAULTS_SOURCE,
  loadConfig,
  resolveStateDir,
} from './load.js';
export { parseConfig, parseConfigYaml } from './parse.js';
export {
  DEFAULT_REGION_API_PORT,
  DEFAULT_REGION_CNC_PORT,
  DEFAULT_REGIONS,
  REGION_PRIORITY_MIN,
  type RegionConfig,
} from './region-schema.js';
export {
  passwordFilePath,
  primaryRegion,
  REDACTED,
  redactConfig,
  redisPasswordFilePath,
  regionByName,
  regionsByPriority,
  sqlitePath,
} from './regions.js';
export type { IotdrConfig } from './schema.js';
export {
  ensureStateDir,
  loadOrCreateSecretFile,
  natsRouteSecretPath,
  PRIVATE_DIR_MODE,
  readSecretFile,
  SECRET_FILE_MODE,
  SECRETS_DIR,
  secretsDir,
  writeSecretFile,
} from './secrets.js';
export {
  DEFAULT_RESTART_DELAY_MS,
  DEFAULT_RESTART_MAX_DELAY_MS,
  DEFAULT_SUPERVISION_RESTART,
  DEFAULT_SUPERVISION_STABLE_MS,
  SUPERVISION_LIMITS,
  SUPERVISION_RESTART_MODES,
  type SupervisionConfig,
} from './supervision.js';

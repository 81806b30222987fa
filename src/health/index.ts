/** The region's health API: checkpoints, the engine that runs them, and the /health routes. */

export {
  type BrokerCheckpointOptions,
  type BrokerConnectCheckpointOptions,
  type BrokerHealthIdentity,
  brokerCheckpoint,
  brokerConnectCheckpoint,
  HEALTH_CLIENT_ID_PREFIX,
} from './checkpoints/broker.js';
export { type CustomCheckpointOptions, customCheckpoint } from './checkpoints/custom.js';
export {
  type HttpCheckpointOptions,
  httpCheckpoint,
  MAX_BODY_BYTES,
} from './checkpoints/http.js';
export {
  REGISTRY_PROBE_KEY,
  type RegistryCheckpointOptions,
  registryCheckpoint,
} from './checkpoints/registry.js';
export {
  assessLinks,
  DEFAULT_MAX_CONTACT_AGE_MS,
  type ReplicationCheckpointOptions,
  type ReplicationThresholds,
  replicationCheckpoint,
} from './checkpoints/replication.js';
export {
  ADDRESS_PLACEHOLDER,
  DEFAULT_CHECKPOINT_TIMEOUT_MS,
  DEFAULT_CONNECT_EVERY_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CRITICAL_COMPONENTS,
  DEFAULT_EXPECTED_STATUS,
  DEFAULT_HEALTH_CACHE_MS,
  DEFAULT_MAX_LAG_CHANGES,
  DEFAULT_MAX_LAG_MS,
  HEALTH_COMPONENTS,
  HEALTH_LIMITS,
  type HealthComponent,
  type HealthConfig,
  HTTP_CHECK_COMPONENTS,
  type HttpCheckConfig,
  healthCacheWindowMs,
  healthSection,
  REGION_PLACEHOLDER,
} from './config.js';
export { HEALTH_CONTENT_TYPE, HEALTH_ROUTES } from './contracts.js';
export {
  DuplicateCheckpointError,
  HEALTH_ERRORS,
  InvalidCheckpointError,
  UnknownCheckpointError,
} from './errors.js';
export { healthRoutes } from './routes.js';
export type { Outcome, RunEnd } from './runner.js';
export { HealthService, type HealthServiceOptions } from './service.js';
export {
  type CheckEntry,
  type Checkpoint,
  type CheckpointOptions,
  DEFAULT_BUDGET_MARGIN_MS,
  type HealthResponse,
  type HealthStatus,
  httpStatusOf,
  MEASUREMENT_PATTERN,
  type ProbeContext,
  type ProbeResult,
  systemTimers,
  type Timers,
  worst,
} from './types.js';

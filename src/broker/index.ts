/** The region's MQTT broker: mutual TLS and tokens from the registry, policies, limits, disconnects, notices. */
export {
  type BrokerAddresses,
  BrokerNode,
  createBroker,
  createBrokerNode,
  type FailoverNotice,
  type HealthIdentityMaterial,
  RegionBroker,
} from './broker.js';
export {
  type CapacityBound,
  type CapacityFacts,
  DEFAULT_BYTES_PER_SESSION,
  DEFAULT_HEAP_BYTES_PER_SESSION,
  FALLBACK_OPEN_FILES,
  FILES_RESERVE,
  type MachineFacts,
  type MachineProbes,
  machineCapacity,
  type OpenFileLimits,
  parseOpenFileLimits,
  readMachineFacts,
  SESSION_MEMORY_SHARE,
  type SessionCapacity,
  sessionCapacity,
} from './capacity.js';
export { checkRedisUrl, REDIS_CONNECT_TIMEOUT_MS } from './cluster.js';
export {
  BROKER_LIMITS,
  type BrokerConfig,
  brokerSection,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CONNECTIONS_PER_SECOND_PER_ADDRESS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_MAX_TOPIC_LENGTH,
  DEFAULT_MAX_TOPIC_LEVELS,
  DEFAULT_TLS_TICKET_ROTATE_HOURS,
  DEFAULT_WORKERS,
  type RedisConfig,
  redisKey,
  redisSection,
} from './config.js';
export { BROKER_ROUTES } from './contracts.js';
export { messageIdOf } from './decide.js';
export {
  CLUSTER_TOPIC_PREFIX,
  type DisconnectTarget,
  HEALTH_CLIENT_PREFIX,
  type InboundMessage,
  type MessageListener,
  type PublishOptions,
  type SubscribeEvent,
  type SubscribeListener,
} from './engine.js';
export { BROKER_ERRORS } from './errors.js';
export { brokerRoutes } from './http.js';
export {
  HEARTBEAT_MS,
  INBOUND_TIMEOUT_MS,
  type LocalHandler,
  type LocalOutcome,
  NODE_EXPIRY_MS,
} from './link.js';
export type { ListenAddress } from './listener.js';
export type { RefusalReason } from './metrics.js';
export {
  type BrokerClusterOptions,
  type BrokerLimits,
  type BrokerOptions,
  DEFAULT_LIMITS,
  type NodeRunner,
  type TlsTicketOptions,
  type TokenListenerOptions,
} from './options.js';
export type { ConnectionInfo } from './session.js';
export {
  parseRequestTopic,
  SHADOW_TOPIC_PREFIX,
  type ShadowPublish,
  ShadowTopics,
  type ShadowTopicsOptions,
  shadowRoutes,
  shadowTopic,
} from './shadow/index.js';
export { DEVICE_POLICY_TEMPLATE, FAILOVER_NOTICE_TOPIC } from './template.js';
export {
  DEFAULT_TICKET_ROTATE_MS,
  decodeTicketSecret,
  MAX_TICKET_ROTATE_MS,
  newTicketSecret,
  TICKET_SECRET_BYTES,
} from './tickets.js';

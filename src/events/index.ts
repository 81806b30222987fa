export { type ReadEventsOptions, readEvents } from './client.js';
export {
  DEFAULT_DUPLICATE_WINDOW_SECONDS,
  DEFAULT_EVENT_ENGINE,
  DEFAULT_MAX_AGE_SECONDS,
  DEFAULT_MAX_BYTES,
  DEFAULT_NATS_CLIENT_PORT,
  DEFAULT_NATS_CLUSTER_PORT,
  EVENT_ENGINES,
  EVENTS_LIMITS,
  type EventEngine,
  type EventsConfig,
  eventsSection,
  MAX_NATS_SERVERS,
  NATS_LIMITS,
  type NatsConfig,
  type NatsServerConfig,
  natsReplicasOf,
  natsSection,
} from './config.js';
export { EVENTS_ERRORS } from './errors.js';
export {
  busEventSchema,
  DEFAULT_READ_LIMIT,
  EVENTS_PATH,
  type EventRoutesOptions,
  eventRoutes,
  MAX_READ_LIMIT,
  STREAM_HIGH_WATER_BYTES,
  STREAM_PATH,
} from './http.js';
export {
  DEFAULT_APPEND_TIMEOUT_MS,
  DEFAULT_TAIL_POLL_MS,
  eventStreamConfig,
  JetStreamEventBus,
  type JetStreamEventBusOptions,
} from './jetstream.js';
export { MAX_EVENT_ID_LENGTH, MAX_EVENT_TOPIC_LENGTH, MAX_READ_BATCH, MAX_WAIT_MS } from './limits.js';
export {
  connectNats,
  decodeEvent,
  encodeEvent,
  eventStreamName,
  eventSubject,
  type NatsLink,
  natsUnavailable,
} from './nats.js';
export {
  findNatsServer,
  type NatsRoute,
  type NatsServerSpec,
  natsClientUrl,
  natsServerConfig,
} from './nats-server.js';
export { encodePayload, parseJson, payloadBytes } from './payload.js';
export {
  DEFAULT_STREAM_RECHECK_MS,
  REVOKED_CLOSE_CODE,
  REVOKED_CLOSE_REASON,
  StreamGuard,
  type StreamGuardOptions,
  type StreamTokens,
} from './revocation.js';
export {
  DEFAULT_RETENTION_INTERVAL_MS,
  type Every,
  SqliteEventBus,
  type SqliteEventBusOptions,
  type SqliteSynchronous,
} from './sqlite.js';
export type {
  AppendResult,
  BusEvent,
  BusStats,
  EventBus,
  EventPayload,
  EventSource,
  NewEvent,
  ReadOptions,
  ReadResult,
  RetentionResult,
} from './types.js';

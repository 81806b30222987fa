/**
 * `iotdr/device`: the failover-aware device SDK (docs/architecture.md §6.7, docs/device.md).
 */
export { Backoff } from './backoff.js';
export { DeviceClient, type MessageHandler } from './client.js';
export { DEVICE_ERRORS, DeviceError, QueueFullError } from './errors.js';
export type {
  DeviceCounters,
  DeviceEvent,
  DeviceEventOf,
  DeviceEventType,
  DisconnectReason,
  Endpoint,
  MoveTrigger,
} from './events.js';
export {
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_CAP_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DNS_RECHECK_MS,
  DEFAULT_DNS_TIMEOUT_MS,
  DEFAULT_KEEPALIVE_SECONDS,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MQTT_NAME,
  DEFAULT_MTLS_PORT,
  DEFAULT_QUEUE_COMMIT_INTERVAL_MS,
  DEFAULT_QUEUE_MAX_MESSAGES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_TOKEN_PORT,
  type DeviceClientOptions,
  parseDeviceOptions,
  type ResolvedDeviceOptions,
} from './options.js';
export type { CommandHandler, ShadowState } from './requests.js';
export { type Destination, DestinationResolver, DnsCache } from './resolver.js';
export { type CommandReply, type DeviceCommand, NOTICE_TOPIC } from './topics.js';

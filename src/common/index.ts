export type { Clock, Timers } from './clock.js';
export { systemClock, systemTimers } from './clock.js';
export { Closers } from './closers.js';
export { type ModuleEntry, moduleEntry, startWorker } from './entry.js';
export type {
  CodeWithStatus,
  ErrorCatalogue,
  ErrorCode,
  ErrorSpec,
  FieldIssue,
  IotdrErrorCodes,
  IotdrErrorOptions,
} from './errors.js';
export {
  COMMON_ERRORS,
  ConfigError,
  ConflictError,
  formatPath,
  IotdrError,
  NotFoundError,
  PkiError,
  relayedCode,
  StoreError,
  ValidationError,
} from './errors.js';
export {
  ensurePrivateDir,
  exists,
  findExecutable,
  isExecutable,
  readIfExists,
  writeFileAtomic,
} from './files.js';
export { createLogger, DEFAULT_LOG_LEVEL, LOG_LEVELS, type Logger, type LogLevel } from './logger.js';
export {
  DEFAULT_API_NAME,
  DEFAULT_MQTT_NAME,
  DEFAULT_MQTT_PORT,
  DEFAULT_MQTT_TOKEN_PORT,
  DNS_LABEL_PATTERN,
  DNS_NAME_PATTERN,
  isAddress,
  PLATFORM_TOPIC_PREFIX,
  REGION_NAME_PATTERN,
} from './names.js';
export {
  addressSchema,
  describeInput,
  dnsLabelSchema,
  expecting,
  filePath,
  headersSchema,
  httpUrl,
  httpUrlSchema,
  integerAtLeast,
  integerBetween,
  integerWithin,
  isMapping,
  type ListenerConfig,
  listener,
  matching,
  nonEmptyString,
  oneOf,
  PORT,
  portSchema,
  type Range,
  section,
  trueOrFalse,
} from './schema.js';
export { abortableSleep, backoffMs, type Sleep } from './sleep.js';
export { baseUrl } from './url.js';
export { uuidv7 } from './uuid.js';
export { packageVersion } from './version.js';
export { type WaitOptions, waitUntil } from './wait.js';

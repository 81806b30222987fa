export { Api, CALL_TIMEOUT_MS } from './api-client.js';
export type { Clock, Timers } from './clock.js';
export { systemClock, systemTimers } from './clock.js';
export { Closers } from './closers.js';
export { type ModuleEntry, moduleEntry, startWorker } from './entry.js';
export type { FieldIssue, IotdrErrorOptions } from './errors.js';
export {
  ConfigError,
  ConflictError,
  formatPath,
  IotdrError,
  NotFoundError,
  PkiError,
  StoreError,
  ValidationError,
} from './errors.js';
export { ensurePrivateDir, writeFileAtomic } from './files.js';
export { createLogger, type Logger } from './logger.js';
export { abortableSleep, backoffMs, type Sleep } from './sleep.js';
export { baseUrl } from './url.js';
export { uuidv7 } from './uuid.js';
export { packageVersion } from './version.js';
export { type WaitOptions, waitUntil } from './wait.js';

/**
 * Command and control (docs/architecture.md §5.4, §8): onboarding, bulk jobs, suspension,
 * decommissioning, commands.
 */
export {
  COMMAND_RETENTION_MS,
  COMMAND_SWEEP_MS,
  type Command,
  type CommandBroker,
  CommandService,
  type CommandServiceOptions,
  DEFAULT_COMMAND_MAX_ATTEMPTS,
  DEFAULT_COMMAND_TIMEOUT_MS,
  type IssueCommandInput,
  issueCommandBody,
} from './commands.js';
export { CNC_ROUTES } from './contracts.js';
export { type CsvRecord, parseCsv } from './csv.js';
export {
  type Decommissioned,
  type DeviceCertificates,
  decommissionDevice,
  type OnboardedDevice,
  type OnboardInput,
  onboardBody,
  onboardDevice,
  resumeDevice,
  suspendDevice,
} from './devices.js';
export {
  CNC_DOCUMENTS,
  CNC_KIND,
  COMMAND_STATES,
  type CommandDoc,
  type CommandState,
  commandDocSchema,
  FINAL_COMMAND_STATES,
  type IdempotencyDoc,
  JOB_STATES,
  type JobResult,
  type JobState,
  MAX_COMMAND_PAYLOAD_BYTES,
  MAX_COMMAND_RESULT_BYTES,
  MAX_JOB_DEVICES,
  type OnboardingJobDoc,
} from './documents.js';
export {
  CNC_ERRORS,
  CommandFinishedError,
  DeviceExistsError,
  IdempotencyInFlightError,
  IdempotencyMismatchError,
  InvalidDeviceListError,
  JobRunningError,
  KeysExpiredError,
  KeysGoneError,
  KeysNotFoundError,
  ScopeError,
  UnknownCommandError,
  UnknownDeviceError,
  UnknownGroupError,
  UnknownJobError,
  UnknownTemplateError,
} from './errors.js';
export { cncRoutes, MAX_BULK_BODY_BYTES } from './http.js';
export { IDEMPOTENCY_HEADER, IDEMPOTENCY_TTL_MS, IdempotencyStore } from './idempotency.js';
export {
  JOB_CONCURRENCY,
  JOB_KEYS_TTL_MS,
  JOB_RETENTION_MS,
  type Job,
  type JobKey,
  JobService,
  type JobServiceOptions,
  validateJob,
} from './jobs.js';
export { requireTemplateInScope } from './scope.js';
export { CncServer, type CncServerOptions, cncCheckpoint } from './server.js';

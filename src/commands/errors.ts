import {
  ConflictError,
  type ErrorCatalogue,
  type FieldIssue,
  IotdrError,
  NotFoundError,
  ValidationError,
} from '../common/index.js';

/** Every code command and control raises. */
export const CNC_ERRORS = {
  IOTDR_CNC_UNKNOWN_TEMPLATE: {
    status: 404,
    meaning: 'onboarding names a policy template that does not exist',
  },
  IOTDR_CNC_UNKNOWN_GROUP: { status: 404, meaning: 'onboarding names a thing group that does not exist' },
  IOTDR_CNC_UNKNOWN_DEVICE: { status: 404, meaning: 'no device of that name is onboarded' },
  IOTDR_CNC_UNKNOWN_COMMAND: { status: 404, meaning: 'no command with that id' },
  IOTDR_CNC_UNKNOWN_JOB: { status: 404, meaning: 'no onboarding job with that id' },
  IOTDR_CNC_DEVICE_EXISTS: { status: 409, meaning: 'a device of that name is already onboarded' },
  IOTDR_CNC_IDEMPOTENCY_MISMATCH: {
    status: 422,
    meaning: 'the Idempotency-Key was used before for a different request',
  },
  IOTDR_CNC_IDEMPOTENCY_IN_FLIGHT: {
    status: 409,
    meaning: 'a request with the same Idempotency-Key is still running',
  },
  IOTDR_CNC_OUT_OF_SCOPE: {
    status: 403,
    meaning:
      "a scoped console token may not do this operation, not on this device's groups, or not with this template",
  },
  IOTDR_CNC_COMMAND_FINISHED: { status: 409, meaning: 'the command already reached a final state' },
  IOTDR_CNC_INVALID_DEVICE_LIST: {
    status: 400,
    meaning: 'lines of an onboarding list are not valid (each named in `errors`); nothing was onboarded',
  },
  IOTDR_CNC_JOB_RUNNING: {
    status: 409,
    meaning: "an onboarding job's keys were asked for while it still runs",
  },
  IOTDR_CNC_KEYS_GONE: {
    status: 410,
    meaning: "an onboarding job's private keys are no longer here to hand out",
  },
  IOTDR_CNC_KEYS_EXPIRED: {
    status: 410,
    meaning: "an onboarding job's private keys were not fetched within their TTL and were dropped",
  },
  IOTDR_CNC_KEYS_NOT_FOUND: {
    status: 404,
    meaning:
      'no keys of this onboarding job for this token: only the token that submitted the job fetches them',
  },
} as const satisfies ErrorCatalogue;

type CncErrors = typeof CNC_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends CncErrors {}
}

/** Onboarding names a template (a registry policy) that does not exist. */
export class UnknownTemplateError extends NotFoundError {
  constructor(template: string) {
    super(
      'IOTDR_CNC_UNKNOWN_TEMPLATE',
      `no policy template '${template}'; create it with PUT /v1/policies/${template}`,
      {
        template,
      },
    );
  }
}

export class UnknownGroupError extends NotFoundError {
  constructor(groups: readonly string[]) {
    super('IOTDR_CNC_UNKNOWN_GROUP', `no thing group ${groups.map((g) => `'${g}'`).join(', ')}`, {
      groups: [...groups],
    });
  }
}

export class UnknownDeviceError extends NotFoundError {
  constructor(thingName: string) {
    super('IOTDR_CNC_UNKNOWN_DEVICE', `no device '${thingName}'`, { thingName });
  }
}

export class UnknownCommandError extends NotFoundError {
  constructor(commandId: string) {
    super('IOTDR_CNC_UNKNOWN_COMMAND', `no command '${commandId}'`, { commandId });
  }
}

export class UnknownJobError extends NotFoundError {
  constructor(jobId: string) {
    super('IOTDR_CNC_UNKNOWN_JOB', `no onboarding job '${jobId}'`, { jobId });
  }
}

export class DeviceExistsError extends ConflictError {
  constructor(thingName: string) {
    super(
      'IOTDR_CNC_DEVICE_EXISTS',
      `device '${thingName}' is already onboarded; decommission it first, or retry with the same Idempotency-Key to get the first answer`,
      { thingName },
    );
  }
}

/** A retry carries an Idempotency-Key already used for a different request. */
export class IdempotencyMismatchError extends IotdrError {
  constructor() {
    super(
      'IOTDR_CNC_IDEMPOTENCY_MISMATCH',
      'this Idempotency-Key was used for a different request (method, path or body); use a new key',
      { status: 422 },
    );
  }
}

/** The same Idempotency-Key is being processed by another request right now. */
export class IdempotencyInFlightError extends ConflictError {
  constructor() {
    super(
      'IOTDR_CNC_IDEMPOTENCY_IN_FLIGHT',
      'a request with this Idempotency-Key is still running; retry shortly',
    );
  }
}

/** A scoped console token may not do this operation, or not on this device. */
export class ScopeError extends IotdrError {
  constructor(message: string, details: Record<string, unknown>) {
    super('IOTDR_CNC_OUT_OF_SCOPE', message, { status: 403, details });
  }
}

/** A command can no longer change (it reached a final state). */
export class CommandFinishedError extends ConflictError {
  constructor(commandId: string, state: string) {
    super('IOTDR_CNC_COMMAND_FINISHED', `command '${commandId}' is already ${state}`, { commandId, state });
  }
}

/** An onboarding list with lines that do not validate (and `partial` not asked), or no valid line at all. */
export class InvalidDeviceListError extends ValidationError {
  constructor(message: string, rejected: FieldIssue[]) {
    super(message, rejected, 'IOTDR_CNC_INVALID_DEVICE_LIST');
  }
}

/** The keys of an onboarding job asked for before the job finished. */
export class JobRunningError extends ConflictError {
  constructor(jobId: string) {
    super('IOTDR_CNC_JOB_RUNNING', 'the job is still running; fetch the keys once it finished', { jobId });
  }
}

/** The keys of an onboarding job are handed out once, by the region that made them. */
export class KeysGoneError extends IotdrError {
  constructor(jobId: string) {
    super(
      'IOTDR_CNC_KEYS_GONE',
      'no keys to hand out: they were fetched already, the devices sent CSRs, or another region ran the job',
      { status: 410, details: { jobId } },
    );
  }
}

/** The keys of an onboarding job were not fetched within their TTL: dropped from memory. */
export class KeysExpiredError extends IotdrError {
  constructor(jobId: string, expiredAt: string) {
    super(
      'IOTDR_CNC_KEYS_EXPIRED',
      `the keys were not fetched in time and were dropped at ${expiredAt}; the devices need new certificates (decommission and onboard them again)`,
      { status: 410, details: { jobId, expiredAt } },
    );
  }
}

/** Another token asks for an onboarding job's keys: they are handed only to the job's submitter. */
export class KeysNotFoundError extends NotFoundError {
  constructor(jobId: string) {
    super(
      'IOTDR_CNC_KEYS_NOT_FOUND',
      'no keys of this job for this token: only the token that submitted the job fetches them',
      { jobId },
    );
  }
}

import { ConflictError, IotdrError, NotFoundError } from '../common/index.js';

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

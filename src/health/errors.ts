import {
  type ErrorCatalogue,
  formatPath,
  IotdrError,
  NotFoundError,
  ValidationError,
} from '../common/index.js';

/** Every code the health service raises. */
export const HEALTH_ERRORS = {
  IOTDR_HEALTH_UNKNOWN_CHECKPOINT: {
    status: 404,
    meaning: 'GET /health/{checkpoint} names no checkpoint; `checkpoints` lists the names',
  },
  IOTDR_HEALTH_INVALID_CHECKPOINT: {
    meaning: "a checkpoint's definition or options are not valid; `issues` names each field",
  },
  IOTDR_HEALTH_DUPLICATE_CHECKPOINT: { meaning: 'two checkpoints were registered under one name' },
} as const satisfies ErrorCatalogue;

type HealthErrors = typeof HEALTH_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends HealthErrors {}
}

/** GET /health/{checkpoint} for a name no checkpoint has. */
export class UnknownCheckpointError extends NotFoundError {
  constructor(name: string, known: readonly string[]) {
    super('IOTDR_HEALTH_UNKNOWN_CHECKPOINT', `no health checkpoint named '${name}'`, {
      checkpoint: name,
      checkpoints: [...known],
    });
    this.name = 'UnknownCheckpointError';
  }
}

/** A checkpoint's definition or options do not satisfy their schema; names every bad field. */
export class InvalidCheckpointError extends ValidationError {
  constructor(what: string, issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>) {
    const list = issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
    super(
      `invalid ${what}: ${list.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      list,
      'IOTDR_HEALTH_INVALID_CHECKPOINT',
    );
    this.name = 'InvalidCheckpointError';
  }
}

/** Two checkpoints with one name: GET /health/{checkpoint} could not tell them apart. */
export class DuplicateCheckpointError extends IotdrError {
  constructor(name: string) {
    super('IOTDR_HEALTH_DUPLICATE_CHECKPOINT', `a health checkpoint named '${name}' already exists`, {
      status: 409,
      details: { checkpoint: name },
    });
    this.name = 'DuplicateCheckpointError';
  }
}

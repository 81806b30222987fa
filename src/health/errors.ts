import { formatPath, IotdrError, NotFoundError, ValidationError } from '../common/index.js';

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

/**
 * Typed errors with stable codes. Every failure iotdr reports to a user has one class here;
 * over HTTP it becomes application/problem+json (RFC 9457) carrying the same `code`.
 * Codes are never reused for a different failure.
 */

/** One problem with one field of an input: `path` is the dotted path of the field (`regions.0.name`). */
export interface FieldIssue {
  path: string;
  message: string;
}

export interface IotdrErrorOptions {
  /** HTTP status this error maps to; 500 when absent. */
  status?: number;
  issues?: FieldIssue[];
  /** Structured fields a client can act on (e.g. what a certificate is still attached to). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class IotdrError extends Error {
  readonly code: string;
  readonly status: number;
  readonly issues: FieldIssue[];
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: IotdrErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IotdrError';
    this.code = code;
    this.status = options.status ?? 500;
    this.issues = options.issues ?? [];
    this.details = options.details ?? {};
  }
}

/** Input that does not satisfy its schema: 400, names every bad field. */
export class ValidationError extends IotdrError {
  constructor(message: string, issues: FieldIssue[], code = 'IOTDR_VALIDATION_FAILED') {
    super(code, message, { status: 400, issues });
    this.name = 'ValidationError';
  }
}

export class NotFoundError extends IotdrError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { status: 404, details });
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends IotdrError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { status: 409, details });
    this.name = 'ConflictError';
  }
}

export class ConfigError extends IotdrError {
  constructor(message: string, issues: FieldIssue[]) {
    super('IOTDR_CONFIG_INVALID', message, { status: 400, issues });
    this.name = 'ConfigError';
  }
}

export class PkiError extends IotdrError {
  constructor(code: string, message: string, options: IotdrErrorOptions = {}) {
    super(code, message, { status: 400, ...options });
    this.name = 'PkiError';
  }
}

export class StoreError extends IotdrError {
  constructor(code: string, message: string, options: IotdrErrorOptions = {}) {
    super(code, message, { status: 503, ...options });
    this.name = 'StoreError';
  }
}

/** Formats zod-style issue paths (`['regions', 0, 'name']`) as `regions.0.name`; the root is `(root)`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.length === 0 ? '(root)' : path.map((p) => String(p)).join('.');
}

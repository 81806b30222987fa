/**
 * Typed errors with stable codes. Every failure iotdr reports to a user has a code from the
 * catalogue of the component that raises it (`src/<component>/errors.ts`, documented in
 * docs/errors.md); over HTTP it becomes application/problem+json (RFC 9457) carrying the same
 * `code`. Codes are never reused for a different failure.
 */

/** What a catalogue says of one code. */
export interface ErrorSpec {
  /**
   * The HTTP status of the problem+json answer an iotdr API gives with this code (the error's
   * `status`). Absent for a code that is never an HTTP answer: raised in the CLI, the device SDK,
   * the drill, a background task (replication, ingestion), or while a process starts.
   */
  readonly status?: number;
  /** What went wrong, in one line. */
  readonly meaning: string;
}

/**
 * A component's catalogue: every code it raises. Declared `as const satisfies ErrorCatalogue` in
 * the component's errors.ts, exported through its front door, and added to `IotdrErrorCodes`.
 */
export type ErrorCatalogue = { readonly [code: `IOTDR_${string}`]: ErrorSpec };

/**
 * Every catalogued code. Here only common's own: each component's errors.ts adds its catalogue by
 * declaration merging, `declare module '../common/index.js' { interface IotdrErrorCodes extends
 * Catalogue {} }`, so a code no catalogue declares does not compile where an error is made, and a
 * code two catalogues declare differently does not compile at all.
 */
export interface IotdrErrorCodes extends CommonErrors {}

/** A code some component's catalogue declares. */
export type ErrorCode = keyof IotdrErrorCodes & string;

/**
 * The codes whose catalogue entry gives HTTP status `S`, or none (never an HTTP answer): what the
 * classes of one status (NotFoundError, ConflictError, ValidationError) accept, so a code cannot
 * answer with a status its catalogue does not say.
 */
export type CodeWithStatus<S extends number> = {
  [C in ErrorCode]: IotdrErrorCodes[C] extends { readonly status: infer T } ? (T extends S ? C : never) : C;
}[ErrorCode];

/** The codes common itself raises: ValidationError's default, ConfigError's, waitUntil's. */
export const COMMON_ERRORS = {
  IOTDR_VALIDATION_FAILED: {
    status: 400,
    meaning: 'a field of the request (body, query, path or header) is invalid; `errors` names each one',
  },
  IOTDR_CONFIG_INVALID: {
    meaning: 'the configuration file, a secret file or a region name given on the command line is unusable',
  },
  IOTDR_WAIT_ABORTED: { meaning: 'a wait was interrupted before what it waited for happened' },
  IOTDR_WAIT_TIMEOUT: { meaning: 'what a wait was for did not happen in time' },
} as const satisfies ErrorCatalogue;

type CommonErrors = typeof COMMON_ERRORS;

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
  readonly code: ErrorCode;
  readonly status: number;
  readonly issues: FieldIssue[];
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: IotdrErrorOptions = {}) {
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
  constructor(message: string, issues: FieldIssue[], code: CodeWithStatus<400> = 'IOTDR_VALIDATION_FAILED') {
    super(code, message, { status: 400, issues });
    this.name = 'ValidationError';
  }
}

export class NotFoundError extends IotdrError {
  constructor(code: CodeWithStatus<404>, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { status: 404, details });
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends IotdrError {
  constructor(code: CodeWithStatus<409>, message: string, details: Record<string, unknown> = {}) {
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
  constructor(code: ErrorCode, message: string, options: IotdrErrorOptions = {}) {
    super(code, message, { status: 400, ...options });
    this.name = 'PkiError';
  }
}

export class StoreError extends IotdrError {
  constructor(code: ErrorCode, message: string, options: IotdrErrorOptions = {}) {
    super(code, message, { status: 503, ...options });
    this.name = 'StoreError';
  }
}

const CODE_FORM = /^IOTDR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/;

/**
 * The code of a problem another iotdr process answered with, to keep as the relayed error's code
 * so its caller can act on it: that process runs this package, so its codes are these catalogues'.
 * Anything without the form of a code (a proxy's error page, another server) becomes `fallback`.
 */
export function relayedCode(code: unknown, fallback: ErrorCode): ErrorCode {
  return typeof code === 'string' && CODE_FORM.test(code) ? (code as ErrorCode) : fallback;
}

/** Formats zod-style issue paths (`['regions', 0, 'name']`) as `regions.0.name`; the root is `(root)`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.length === 0 ? '(root)' : path.map((p) => String(p)).join('.');
}

/**
 * The `regions[].store` section of the configuration: where a region keeps its registry (SQLite or
 * PostgreSQL). Its defaults, limits, type and schema; the stores themselves take the same values.
 */
import { z } from 'zod';
import {
  describeInput,
  expecting,
  filePath,
  integerWithin,
  isMapping,
  matching,
  oneOf,
  type Range,
  section,
} from '../common/index.js';

/** SQLite `PRAGMA synchronous`: `full` survives power loss, `normal` in WAL mode may lose the last commits. */
export const SQLITE_SYNCHRONOUS_MODES = ['full', 'normal'] as const;
export type SqliteSynchronous = (typeof SQLITE_SYNCHRONOUS_MODES)[number];
/** Default `full`: an acknowledged write survives a power cut. */
export const DEFAULT_SQLITE_SYNCHRONOUS = 'full';
export const STORE_ENGINES = ['sqlite', 'postgres'] as const;
/** Default `sqlite`: embedded, nothing to run beside the region. */
export const DEFAULT_STORE_ENGINE = 'sqlite';
/** Connections in a region's PostgreSQL read pool (the writer holds one more). Default 10. */
export const DEFAULT_POSTGRES_POOL_SIZE = 10;
/** Bounds of the section's numbers, inclusive. */
export const STORE_LIMITS = {
  /** Connections in the PostgreSQL read pool. */
  poolSize: { min: 1, max: 100 },
} as const satisfies Record<string, Range>;
/** Schema holding iotdr's tables when the configuration names none. */
export const DEFAULT_POSTGRES_SCHEMA = 'iotdr';
/** A PostgreSQL schema name iotdr accepts: a lowercase SQL identifier of at most 63 characters. */
export const POSTGRES_SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
/** Query parameters of a PostgreSQL URL that carry a secret (libpq connection parameters). */
const SECRET_URL_PARAMS = ['password', 'sslpassword'];

export interface SqliteStoreConfig {
  readonly engine: 'sqlite';
  /** Database file; absolute, or relative to the state directory. Default `<stateDir>/regions/<name>/registry.db`. */
  readonly path?: string;
  /** SQLite `PRAGMA synchronous`. Default `full`. */
  readonly synchronous: SqliteSynchronous;
}

export interface PostgresStoreConfig {
  readonly engine: 'postgres';
  /** `postgres://` or `postgresql://` URL without a password. */
  readonly url: string;
  /** File holding the password (mode 0600); absolute, or relative to the state directory. */
  readonly passwordFile?: string;
  /** Connections in the pool, 1..100. Default 10. */
  readonly poolSize: number;
  /** PostgreSQL schema for iotdr's tables. Default `iotdr`. */
  readonly schema?: string;
}

export type StoreConfig = SqliteStoreConfig | PostgresStoreConfig;

const POSTGRES_URL_MESSAGE =
  'expected a postgres:// or postgresql:// URL such as postgres://iotdr@db.example.com:5432/iotdr';

/** The URL is never echoed back: it may hold the very secret the message is about. */
const postgresUrlSchema = z.string({ error: expecting(POSTGRES_URL_MESSAGE) }).superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: POSTGRES_URL_MESSAGE });
    return;
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    ctx.addIssue({ code: 'custom', message: `${POSTGRES_URL_MESSAGE}, got a ${url.protocol} URL` });
    return;
  }
  const secretParam = SECRET_URL_PARAMS.find((name) => url.searchParams.has(name));
  if (url.password !== '' || secretParam !== undefined) {
    const where = url.password !== '' ? 'a password' : `a ${secretParam} parameter`;
    ctx.addIssue({
      code: 'custom',
      message:
        `the URL carries ${where}; secrets never go in the config file: remove it from the URL, ` +
        'write the password to a file with mode 0600 and name that file in passwordFile',
    });
  }
});

const sqliteStoreSchema = section({
  engine: z.literal('sqlite'),
  path: filePath()
    .refine((p) => p !== ':memory:', {
      message: 'an in-memory database would lose the registry at every restart; give a file path',
    })
    .optional(),
  synchronous: oneOf(SQLITE_SYNCHRONOUS_MODES).default(DEFAULT_SQLITE_SYNCHRONOUS),
});

const postgresStoreSchema = section({
  engine: z.literal('postgres'),
  url: postgresUrlSchema,
  passwordFile: filePath().optional(),
  poolSize: integerWithin(STORE_LIMITS.poolSize).default(DEFAULT_POSTGRES_POOL_SIZE),
  schema: matching(
    POSTGRES_SCHEMA_PATTERN,
    'a lowercase SQL identifier (a-z, 0-9 and _, not starting with a digit, at most 63 characters)',
  ).optional(),
});

const ENGINE_MESSAGE = `expected one of ${STORE_ENGINES.join(', ')}`;

/** `engine` may be left out and means sqlite, so `store: { synchronous: normal }` is enough. */
export const storeSchema = z
  .preprocess(
    (value) =>
      isMapping(value) && !('engine' in value) ? { ...value, engine: DEFAULT_STORE_ENGINE } : value,
    z.discriminatedUnion('engine', [sqliteStoreSchema, postgresStoreSchema], {
      error: (issue) =>
        isMapping(issue.input)
          ? `${ENGINE_MESSAGE}, got ${describeInput(issue.input.engine)}`
          : `expected a mapping with engine ${STORE_ENGINES.join(' or ')}, got ${describeInput(issue.input)}`,
    }),
  )
  .prefault({ engine: DEFAULT_STORE_ENGINE });

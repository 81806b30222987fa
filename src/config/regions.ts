import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../common/index.js';
import type { RegionConfig } from './region-schema.js';
import type { IotdrConfig } from './schema.js';

/** Stands for a secret in redacted output. */
export const REDACTED = '[redacted]';

/**
 * The region named `name`.
 * @throws ConfigError listing the configured regions' names.
 */
export function regionByName(config: IotdrConfig, name: string): RegionConfig {
  const region = config.regions.find((r) => r.name === name);
  if (region !== undefined) return region;
  const known = config.regions.map((r) => r.name).join(', ');
  const message = `no region named "${name}"; configured regions are ${known}`;
  throw new ConfigError(message, [{ path: 'regions', message }]);
}

/** The preferred region: the lowest priority number (priorities are unique). */
export function primaryRegion(config: IotdrConfig): RegionConfig {
  const [first, ...rest] = config.regions;
  if (first === undefined)
    throw new ConfigError('no regions configured', [{ path: 'regions', message: 'empty' }]);
  return rest.reduce((best, r) => (r.priority < best.priority ? r : best), first);
}

/** The regions, most preferred first. */
export function regionsByPriority(config: IotdrConfig): RegionConfig[] {
  return [...config.regions].sort((a, b) => a.priority - b.priority);
}

function inStateDir(path: string, stateDir: string): string {
  return isAbsolute(path) ? path : resolve(stateDir, path);
}

/**
 * Absolute path of a region's SQLite database: the configured path, relative
 * ones taken from the state directory, or `<stateDir>/regions/<name>/registry.db`. `undefined` for
 * other engines.
 */
export function sqlitePath(region: RegionConfig, stateDir: string): string | undefined {
  if (region.store.engine !== 'sqlite') return undefined;
  const path = region.store.path;
  if (path === undefined) return join(resolve(stateDir), 'regions', region.name, 'registry.db');
  return inStateDir(path, stateDir);
}

/** Absolute path of a PostgreSQL store's password file, relative ones taken from the state directory. */
export function passwordFilePath(region: RegionConfig, stateDir: string): string | undefined {
  if (region.store.engine !== 'postgres' || region.store.passwordFile === undefined) return undefined;
  return inStateDir(region.store.passwordFile, stateDir);
}

/** Absolute path of a region's Redis password file, relative ones taken from the state directory. */
export function redisPasswordFilePath(region: RegionConfig, stateDir: string): string | undefined {
  const file = region.redis?.passwordFile;
  return file === undefined ? undefined : inStateDir(file, stateDir);
}

/** Field names whose values are secrets: password, token, secret, and compounds such as adminToken. */
const SECRET_KEY = /(?:password|token|secret)$/i;

function redact(value: unknown, key: string | undefined): unknown {
  if (key !== undefined && SECRET_KEY.test(key) && value !== undefined && value !== null) return REDACTED;
  if (Array.isArray(value)) return value.map((item) => redact(item, undefined));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)]));
  }
  if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*:[^/?#]*@/i.test(value)) {
    // A URL with credentials: the schema refuses them in store URLs, but never print one.
    try {
      const url = new URL(value);
      if (url.password !== '') {
        url.password = REDACTED;
        return url.toString();
      }
    } catch {
      return value;
    }
  }
  return value;
}

/**
 * A mutable copy fit for printing or logging: every field named password, token or secret (or ending
 * so: `adminToken`) and any password inside a URL is replaced by `[redacted]`. Paths to secret files
 * (`passwordFile`) are kept; their contents are never read here.
 */
export function redactConfig(config: IotdrConfig): unknown {
  return redact(config, undefined);
}

import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../common/index.js';
import { parseConfig, parseConfigYaml } from './parse.js';
import type { IotdrConfig } from './schema.js';

/** The file read when neither `--config` nor `IOTDR_CONFIG` names one; its absence means all defaults. */
export const DEFAULT_CONFIG_FILE = 'iotdr.yaml';
/** The state directory, relative to the working directory, when `IOTDR_HOME` is not set. */
export const DEFAULT_STATE_DIR = '.iotdr';
/** `LoadedConfig.source` when no file was read. */
export const DEFAULTS_SOURCE = '(defaults)';

export interface LoadedConfig {
  config: IotdrConfig;
  /** Absolute path of the file read, or `(defaults)`. */
  source: string;
  /** Absolute path of the state directory (certificates, secrets, databases, endpoints.json). */
  stateDir: string;
}

export interface LoadConfigOptions {
  /** Configuration file (`--config`); relative to `cwd`. Overrides `IOTDR_CONFIG`. Must exist. */
  file?: string;
  /** Environment for `IOTDR_CONFIG` and `IOTDR_HOME`. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Directory relative paths start from. Default `process.cwd()`. */
  cwd?: string;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** `IOTDR_HOME` if set (absolute, or relative to `cwd`), else `<cwd>/.iotdr`. */
export function resolveStateDir(env: NodeJS.ProcessEnv, cwd: string): string {
  const home = nonEmpty(env.IOTDR_HOME);
  return home === undefined ? join(resolve(cwd), DEFAULT_STATE_DIR) : resolve(cwd, home);
}

/**
 * Finds, reads and validates the configuration: `options.file`, else `IOTDR_CONFIG`, else
 * `iotdr.yaml` in `cwd`. A missing default file means all defaults; a file named explicitly must exist.
 * @throws ConfigError for a missing or unreadable named file, a YAML syntax error or an invalid field.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const cwd = resolve(options.cwd ?? process.cwd());
  const stateDir = resolveStateDir(env, cwd);
  if (options.file === '') {
    throw new ConfigError('no configuration file named', [
      { path: '--config', message: 'expected a file path' },
    ]);
  }
  const named = options.file ?? nonEmpty(env.IOTDR_CONFIG);
  const file = resolve(cwd, named ?? DEFAULT_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && named === undefined) {
      return { config: parseConfig(undefined), source: DEFAULTS_SOURCE, stateDir };
    }
    const via = options.file !== undefined ? '--config' : 'IOTDR_CONFIG';
    const reason =
      code === 'ENOENT'
        ? `no such file (named by ${via}${isAbsolute(named ?? '') ? '' : `, relative to ${cwd}`})`
        : code === 'EISDIR'
          ? 'is a directory, expected a YAML file'
          : `cannot be read: ${(error as Error).message}`;
    throw new ConfigError(`cannot read configuration file ${file}`, [{ path: file, message: reason }]);
  }
  return { config: parseConfigYaml(text, file), source: file, stateDir };
}

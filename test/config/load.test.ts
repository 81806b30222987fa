import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/index.js';
import {
  ensureStateDir,
  loadConfig,
  parseConfig,
  readSecretFile,
  resolveStateDir,
  writeSecretFile,
} from '../../src/config/index.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iotdr-config-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('loadConfig', () => {
  it('uses all defaults when iotdr.yaml is absent', async () => {
    const loaded = await loadConfig({ cwd: dir, env: {} });
    expect(loaded).toEqual({ config: parseConfig({}), source: '(defaults)', stateDir: join(dir, '.iotdr') });
  });

  it('reads iotdr.yaml from the working directory and merges it with the defaults', async () => {
    await writeFile(join(dir, 'iotdr.yaml'), 'zone: fleet.example\ndns:\n  ttl: 60\n');
    const loaded = await loadConfig({ cwd: dir, env: {} });
    expect(loaded.source).toBe(join(dir, 'iotdr.yaml'));
    expect(loaded.config.zone).toBe('fleet.example');
    expect(loaded.config.dns).toEqual({
      address: '127.0.0.10',
      port: 5353,
      ttl: 60,
      provider: 'builtin',
      extraNames: [],
      servers: [],
    });
    expect(loaded.config.regions.map((r) => r.name)).toEqual(['us-east', 'us-west']);
  });

  it('prefers the file option over IOTDR_CONFIG over the default file', async () => {
    await writeFile(join(dir, 'iotdr.yaml'), 'zone: default.test\n');
    await writeFile(join(dir, 'env.yaml'), 'zone: env.test\n');
    await writeFile(join(dir, 'flag.yaml'), 'zone: flag.test\n');
    const env = { IOTDR_CONFIG: 'env.yaml' };
    expect((await loadConfig({ cwd: dir, env })).config.zone).toBe('env.test');
    expect((await loadConfig({ cwd: dir, env, file: 'flag.yaml' })).config.zone).toBe('flag.test');
    expect((await loadConfig({ cwd: dir, env: {}, file: join(dir, 'flag.yaml') })).source).toBe(
      join(dir, 'flag.yaml'),
    );
  });

  it('fails when an explicitly named file is missing', async () => {
    const viaFlag = await rejection(loadConfig({ cwd: dir, env: {}, file: 'missing.yaml' }));
    expect(viaFlag.message).toContain(join(dir, 'missing.yaml'));
    expect(viaFlag.issues[0]?.message).toContain('no such file (named by --config');
    const viaEnv = await rejection(loadConfig({ cwd: dir, env: { IOTDR_CONFIG: 'gone.yaml' } }));
    expect(viaEnv.issues[0]?.message).toContain('IOTDR_CONFIG');
  });

  it('names the file in validation and syntax errors', async () => {
    const file = join(dir, 'iotdr.yaml');
    await writeFile(file, 'dns:\n  ttl: 0\n');
    const invalid = await rejection(loadConfig({ cwd: dir, env: {} }));
    expect(invalid.message).toBe(`invalid configuration in ${file} (1 problem)`);
    expect(invalid.issues).toEqual([
      { path: 'dns.ttl', message: 'expected an integer between 1 and 86400 (seconds), got 0 (line 2)' },
    ]);
    await writeFile(file, 'regions:\n  - name: a\n   priority: 1\n');
    const syntax = await rejection(loadConfig({ cwd: dir, env: {} }));
    expect(syntax.message).toContain(`YAML syntax error in ${file}`);
    expect(syntax.issues[0]?.path).toMatch(/^\d+:\d+$/);
  });
});

describe('resolveStateDir', () => {
  it('is .iotdr under the working directory by default', () => {
    expect(resolveStateDir({}, '/srv/app')).toBe('/srv/app/.iotdr');
    expect(resolveStateDir({ IOTDR_HOME: '' }, '/srv/app')).toBe('/srv/app/.iotdr');
  });

  it('follows IOTDR_HOME, absolute or relative to the working directory', () => {
    expect(resolveStateDir({ IOTDR_HOME: '/var/lib/iotdr' }, '/srv/app')).toBe('/var/lib/iotdr');
    expect(resolveStateDir({ IOTDR_HOME: 'state' }, '/srv/app')).toBe('/srv/app/state');
  });

  it('is what loadConfig reports', async () => {
    expect((await loadConfig({ cwd: dir, env: { IOTDR_HOME: 'h' } })).stateDir).toBe(join(dir, 'h'));
  });
});

describe('state directory and secret files', () => {
  it('creates the state directory and secrets/ with mode 0700', async () => {
    const stateDir = join(dir, 'state');
    await ensureStateDir(stateDir);
    expect(await mode(stateDir)).toBe(0o700);
    expect(await mode(join(stateDir, 'secrets'))).toBe(0o700);
    await ensureStateDir(stateDir); // idempotent
  });

  it('writes a secret with mode 0600 in a 0700 directory, leaving no temporary file', async () => {
    const path = join(dir, 'secrets', 'admin.token');
    await writeSecretFile(path, 'first\n');
    await writeSecretFile(path, 'second\n');
    expect(await mode(path)).toBe(0o600);
    expect(await mode(join(dir, 'secrets'))).toBe(0o700);
    expect(await readFile(path, 'utf8')).toBe('second\n');
    expect(await readdir(join(dir, 'secrets'))).toEqual(['admin.token']);
    expect(await readSecretFile(path)).toBe('second');
  });

  it('refuses a secret file readable by others, giving the chmod to run', async () => {
    const path = join(dir, 'pg.password');
    await writeFile(path, 'hunter2\n');
    await chmod(path, 0o644);
    const error = await rejection(readSecretFile(path));
    expect(error.message).toContain('mode 0644');
    expect(error.message).toContain(`chmod 600 ${path}`);
    expect(error.message).not.toContain('hunter2');
    await chmod(path, 0o600);
    expect(await readSecretFile(path)).toBe('hunter2');
  });

  it('refuses a missing or empty secret file', async () => {
    expect((await rejection(readSecretFile(join(dir, 'nope')))).issues[0]?.message).toBe('no such file');
    await mkdir(join(dir, 's'), { mode: 0o700 });
    await writeSecretFile(join(dir, 's', 'empty'), '  \n');
    expect((await rejection(readSecretFile(join(dir, 's', 'empty')))).message).toContain('is empty');
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { parseConfig } from '../../src/config/index.js';

interface Captured extends CliIo {
  stdout: string[];
  stderr: string[];
}

let dir: string;

function capture(env: NodeJS.ProcessEnv = {}): Captured {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (line) => stdout.push(line),
    err: (line) => stderr.push(line),
    env,
    cwd: dir,
  };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iotdr-config-cmd-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('iotdr config check', () => {
  it('reports ok and the file for a valid configuration', async () => {
    const file = join(dir, 'fleet.yaml');
    await writeFile(file, 'zone: fleet.test\n');
    const io = capture();
    expect(await main(['config', 'check', '--config', file], io)).toBe(0);
    expect(io.stdout).toEqual([`ok: ${file}`]);
    expect(io.stderr).toEqual([]);
  });

  it('reports ok for the defaults when there is no file', async () => {
    const io = capture();
    expect(await main(['config', 'check'], io)).toBe(0);
    expect(io.stdout).toEqual(['ok: (defaults)']);
  });

  it('lists every problem under a header naming the file and exits 1', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      [
        'dns:',
        '  ttl: 0',
        'logging:',
        '  level: loud',
        'regions:',
        '  - name: a',
        '    priority: 1',
        '',
      ].join('\n'),
    );
    const io = capture();
    expect(await main(['config', 'check', '--config', file], io)).toBe(1);
    expect(io.stdout).toEqual([]);
    expect(io.stderr).toEqual([
      `invalid configuration in ${file} (3 problems)`,
      '  dns.ttl: expected an integer between 1 and 86400 (seconds), got 0 (line 2)',
      '  logging.level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud" (line 4)',
      '  regions.0.address: required: expected an IPv4 or IPv6 address (without brackets) or a hostname (line 6)',
    ]);
  });

  it('exits 1 for a named file that does not exist and for a YAML syntax error', async () => {
    const missing = capture();
    expect(await main(['config', 'check', '--config', 'nope.yaml'], missing)).toBe(1);
    expect(missing.stderr[0]).toBe(`cannot read configuration file ${join(dir, 'nope.yaml')}`);

    await writeFile(join(dir, 'iotdr.yaml'), 'zone: [iot.test\n');
    const syntax = capture();
    expect(await main(['config', 'check'], syntax)).toBe(1);
    expect(syntax.stderr[0]).toContain(`YAML syntax error in ${join(dir, 'iotdr.yaml')}`);
    expect(syntax.stderr[1]).toMatch(/^ {2}\d+:\d+: /);
  });

  it('takes the file from IOTDR_CONFIG', async () => {
    await writeFile(join(dir, 'env.yaml'), 'zone: env.test\n');
    const io = capture({ IOTDR_CONFIG: 'env.yaml' });
    expect(await main(['config', 'check'], io)).toBe(0);
    expect(io.stdout).toEqual([`ok: ${join(dir, 'env.yaml')}`]);
  });
});

describe('iotdr config print', () => {
  it('prints the effective configuration as JSON with the defaults filled in', async () => {
    const file = join(dir, 'iotdr.yaml');
    await writeFile(file, 'dns:\n  ttl: 30\n');
    const io = capture();
    expect(await main(['config', 'print', '--json', '--config', file], io)).toBe(0);
    const printed = JSON.parse(io.stdout.join('\n'));
    expect(printed).toEqual(parseConfig({ dns: { ttl: 30 } }));
    expect(printed.regions[1]).toMatchObject({
      name: 'us-west',
      mqtt: { port: 8883 },
      store: { engine: 'sqlite' },
    });
  });

  it('prints YAML that loads back to the same configuration', async () => {
    const io = capture({ IOTDR_HOME: 'state' });
    expect(await main(['config', 'print'], io)).toBe(0);
    const text = io.stdout.join('\n');
    expect(text).toContain(`# state directory: ${join(dir, 'state')}`);
    expect(parseConfig(parse(text))).toEqual(parseConfig({}));
  });

  it('exits 1 with the problems when the configuration is invalid', async () => {
    await writeFile(join(dir, 'iotdr.yaml'), 'zone: 42\n');
    const io = capture();
    expect(await main(['config', 'print', '--json'], io)).toBe(1);
    expect(io.stdout).toEqual([]);
    expect(io.stderr[1]).toMatch(/^ {2}zone: expected a lowercase DNS name/);
  });
});

describe('iotdr config usage', () => {
  it('prints usage on --help and exits 0', async () => {
    for (const argv of [
      ['config', '--help'],
      ['config', 'check', '--help'],
      ['config', 'print', '-h'],
    ]) {
      const io = capture();
      expect(await main(argv, io)).toBe(0);
      expect(io.stdout[0]).toBe('usage: iotdr config <subcommand> [options]');
    }
  });

  it.each([
    [['config'], 'missing subcommand'],
    [['config', 'validate'], "unknown subcommand 'validate'"],
    [['config', 'check', '--json'], "Unknown option '--json'"],
    [['config', 'print', '--yaml'], "Unknown option '--yaml'"],
    [['config', 'check', 'extra'], 'extra'],
    [['config', 'check', '--config'], "Option '--config <value>' argument missing"],
  ])('%j prints usage on stderr and exits 2', async (argv, message) => {
    const io = capture();
    expect(await main(argv, io)).toBe(2);
    expect(io.stdout).toEqual([]);
    expect(io.stderr[0]).toContain(message);
    expect(io.stderr).toContain('usage: iotdr config <subcommand> [options]');
  });
});

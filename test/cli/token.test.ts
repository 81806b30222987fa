import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { createLogger } from '../../src/common/index.js';
import { loadConfig } from '../../src/config/index.js';
import { type RunningRegion, startRegion } from '../../src/processes/index.js';
import { fetch } from '../harness/https.js';
import { freePort } from '../harness/process.js';

function capture(env: NodeJS.ProcessEnv, cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd };
  return { io, out, err };
}

describe('iotdr token', () => {
  let home: string;
  let configPath: string;
  let region: RunningRegion;
  let port: number;
  let loadedStateDir: string;

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'iotdr-token-'));
    port = await freePort();
    configPath = join(home, 'iotdr.yaml');
    await writeFile(
      configPath,
      `regions:\n  - { name: us-east, priority: 1, address: 127.0.0.1, api: { port: ${port} }, cnc: { port: 0 }, mqtt: { port: 0 } }\n`,
    );
    const loaded = await loadConfig({ file: configPath, env: { IOTDR_HOME: home }, cwd: home });
    loadedStateDir = loaded.stateDir;
    region = await startRegion({
      config: loaded.config,
      stateDir: loaded.stateDir,
      name: 'us-east',
      logger: createLogger({ level: 'silent' }),
    });
  });
  afterAll(async () => {
    await region?.stop();
    await rm(home, { recursive: true, force: true });
  });

  it('creates a token that works with its role, lists it, and revokes it', async () => {
    const env = { IOTDR_HOME: home };
    const made = capture(env, home);
    expect(
      await main(
        ['token', 'create', '--name', 'console', '--role', 'reader', '--config', configPath],
        made.io,
      ),
    ).toBe(0);
    const token = made.out[0] ?? '';
    expect(token).toMatch(/^iotdr_[0-9a-f]{16}_/);
    const tokenId = token.split('_')[1] ?? '';
    const base = region.apiUrl;
    expect((await fetch(`${base}/v1/things`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(
      200,
    );
    const put = await fetch(`${base}/v1/things/x`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(put.status).toBe(403);

    const listed = capture(env, home);
    expect(await main(['token', 'list', '--config', configPath], listed.io)).toBe(0);
    expect(listed.out[0]).toMatch(/^TOKEN ID\s+ROLE\s+NAME\s+CREATED$/);
    expect(listed.out.some((l) => l.startsWith(tokenId) && /reader\s+console/.test(l))).toBe(true);
    expect(listed.out.join('\n')).not.toContain(token);

    const revoked = capture(env, home);
    expect(await main(['token', 'revoke', tokenId, '--config', configPath], revoked.io)).toBe(0);
    expect((await fetch(`${base}/v1/things`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(
      401,
    );
  });

  it('makes a console token scoped to operations, groups and onboarding templates', async () => {
    const env = { IOTDR_HOME: home };
    const made = capture(env, home);
    const args = [
      '--operations',
      'read,onboard',
      '--groups',
      'south',
      '--templates',
      'fleet-device, sensors',
    ];
    expect(
      await main(
        ['token', 'create', '--name', 'south', '--role', 'operator', ...args, '--config', configPath],
        made.io,
      ),
    ).toBe(0);
    const tokenId = (made.out[0] ?? '').split('_')[1] ?? '';
    const admin = (await readFile(join(loadedStateDir, 'secrets', 'admin.token'), 'utf8')).trim();
    const listed = await fetch(`${region.apiUrl}/v1/tokens?limit=1000`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    const items = ((await listed.json()) as { items: { tokenId: string; scope?: unknown }[] }).items;
    expect(items.find((i) => i.tokenId === tokenId)?.scope).toEqual({
      operations: ['read', 'onboard'],
      thingGroups: ['south'],
      templates: ['fleet-device', 'sensors'],
    });
    // A template name the registry would not take is refused by the region, naming the field.
    const bad = capture(env, home);
    expect(
      await main(
        [
          'token',
          'create',
          '--name',
          'x',
          '--role',
          'operator',
          '--templates',
          'no/slash',
          '--config',
          configPath,
        ],
        bad.io,
      ),
    ).toBe(1);
    expect(bad.err.join('\n')).toContain('scope.templates.0');
  });

  it('says what is wrong with a bad invocation or an unknown token', async () => {
    const env = { IOTDR_HOME: home };
    const noRole = capture(env, home);
    expect(
      await main(['token', 'create', '--name', 'x', '--role', 'root', '--config', configPath], noRole.io),
    ).toBe(2);
    expect(noRole.err[0]).toContain('--role, one of admin, operator, reader, replicator');
    const unknown = capture(env, home);
    expect(await main(['token', 'revoke', '0123456789abcdef', '--config', configPath], unknown.io)).toBe(1);
    expect(unknown.err.join('\n')).toContain('IOTDR_REGISTRY_NOT_FOUND');
  });
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drillConfig } from '../../src/drill/index.js';
import { APP_TARGET_PATH } from '../../src/faults/index.js';

describe('the drill configuration', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-drill-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('adds the token listener and an app check to the defaults, in its own file', async () => {
    const { config, configFile, added } = await drillConfig({ auth: 'token', stateDir: dir });
    expect(config.broker.tokenAuth).toBe(true);
    expect(config.health.checks).toEqual([
      expect.objectContaining({
        name: 'drill-app',
        component: 'app',
        // The region's API: HTTPS over mutual TLS, the default.
        url: `https://{address}:8080${APP_TARGET_PATH}`,
      }),
    ]);
    expect(added).toHaveLength(2);
    expect(configFile).toBe(join(dir, 'drill-config.yaml'));
    const written = JSON.parse(await readFile(configFile as string, 'utf8'));
    expect(written).toMatchObject({
      broker: { tokenAuth: true },
      health: { checks: [{ name: 'drill-app' }] },
    });
  });

  it('watches the demo service over plain HTTP on plain loopback links', async () => {
    const file = join(dir, 'plain.yaml');
    await writeFile(file, 'links: { mode: plain-loopback }\n');
    const { config } = await drillConfig({ sourceFile: file, auth: 'mtls', stateDir: dir });
    expect(config.health.checks.map((c) => c.url)).toEqual([`http://{address}:8080${APP_TARGET_PATH}`]);
  });

  it("keeps the user's file when nothing is missing, and never changes it", async () => {
    const file = join(dir, 'iotdr.yaml');
    const text = [
      'health:',
      '  checks:',
      '    - { name: orders, component: app, url: "http://{address}:9000/ok" }',
      '',
    ].join('\n');
    await writeFile(file, text);
    const result = await drillConfig({ sourceFile: file, auth: 'mtls', stateDir: dir });
    expect(result).toMatchObject({ configFile: file, added: [] });
    expect(result.config.health.checks.map((c) => c.name)).toEqual(['orders']);
    expect(await readFile(file, 'utf8')).toBe(text);
  });
});

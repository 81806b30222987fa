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

  it('runs the control plane as N nodes and N etcd members with --control-nodes, and not over configured nodes', async () => {
    const { config, added } = await drillConfig({ auth: 'mtls', stateDir: dir, controlNodes: 3 });
    expect(config.control.nodes.map((n) => [n.name, n.address])).toEqual([
      ['ctl-1', '127.0.0.21'],
      ['ctl-2', '127.0.0.22'],
      ['ctl-3', '127.0.0.23'],
    ]);
    expect(config.control.etcd.members.map((m) => m.address)).toEqual([
      '127.0.0.31',
      '127.0.0.32',
      '127.0.0.33',
    ]);
    expect(added.some((line) => line.startsWith('control.nodes: ctl-1 (127.0.0.21)'))).toBe(true);
    const file = join(dir, 'nodes.yaml');
    await writeFile(
      file,
      JSON.stringify({
        control: {
          nodes: [{ name: 'a', address: '127.0.0.41' }],
          etcd: { members: [{ name: 'e', address: '127.0.0.42' }] },
        },
      }),
    );
    await expect(
      drillConfig({ sourceFile: file, auth: 'mtls', stateDir: dir, controlNodes: 3 }),
    ).rejects.toMatchObject({
      code: 'IOTDR_DRILL_CONFIG',
    });
  });
});

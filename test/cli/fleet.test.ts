/**
 * `iotdr up` with its demo fleet, and `iotdr fleet` beside it: real processes, devices onboarded
 * through command and control, publishing through the DR name into analytics.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { freePorts, spawnIotdr } from '../harness/process.js';

describe('iotdr up with a demo fleet, and iotdr fleet', () => {
  it('runs the demo fleet into analytics, and a second fleet that prints its table', async () => {
    const home = await mkdtemp(join(tmpdir(), 'iotdr-fleet-'));
    const [api, cnc, mqtt, tokenPort, control, dns, analytics] = await freePorts(7);
    const configPath = join(home, 'iotdr.yaml');
    await writeFile(
      configPath,
      JSON.stringify({
        logging: { level: 'warn' },
        broker: { tokenAuth: true },
        regions: ['us-east', 'us-west'].map((name, i) => ({
          name,
          priority: i + 1,
          address: `127.0.0.${93 + i}`,
          api: { port: api },
          cnc: { port: cnc },
          mqtt: { port: mqtt, tokenPort },
        })),
        control: { address: '127.0.0.1', port: control },
        dns: { address: '127.0.0.1', port: dns, ttl: 1 },
        analytics: { address: '127.0.0.1', port: analytics },
      }),
    );
    const up = spawnIotdr(['up', '--fleet', '5', '--config', configPath], { IOTDR_HOME: home });
    try {
      await eventually(
        async () => up.output().includes('iotdr is up') || up.child.exitCode !== null,
        'iotdr up',
        60_000,
      );
      expect(up.output(), up.output()).toContain('iotdr is up');
      expect(up.output()).toMatch(
        /demo fleet\s+5 devices \(demo-00001…\) publishing telemetry through mqtt\.iot\.test/,
      );
      expect(up.output()).toContain(`dashboard     https://127.0.0.1:${analytics}/`);
      expect(up.output()).toContain('iotdr failover --to us-west');
      // Each demo device's telemetry reaches analytics through the primary's bus.
      const adminToken = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
      const totals = async () =>
        (await (
          await fetch(`https://127.0.0.1:${analytics}/v1/totals`, {
            headers: { authorization: `Bearer ${adminToken}` },
          })
        ).json()) as {
          messages: number;
          devices: number;
        };
      await eventually(async () => (await totals()).devices >= 5, 'five demo devices in analytics', 60_000);
      expect((await stat(join(home, 'fleet', 'demo.credentials.json'))).mode & 0o777).toBe(0o600);

      const fleet = spawnIotdr(
        ['fleet', '--devices', '3', '--name', 'extra', '--duration', '4', '--config', configPath],
        {
          IOTDR_HOME: home,
        },
      );
      expect(await fleet.exited, fleet.output()).toBe(0);
      const out = fleet.output();
      expect(out).toContain('iotdr fleet: 3 devices (mtls) onboarded in us-east');
      expect(out).toMatch(/onboarding\s+\[#+\] 100% 3\/3/);
      expect(out).toMatch(/REGION\s+DEVICES\s+ACCEPTED\s+ACKED\s+QUEUED\s+MOVES/);
      expect(out).toMatch(/\nus-east\s+3\s+\d+/);
      expect(out).toMatch(/\ntotal\s+3\s+\d+/);
      await eventually(
        async () => (await totals()).devices >= 8,
        'the three extra devices in analytics',
        60_000,
      );

      // Token devices: things with a broker token each, on the token listener.
      const tokens = spawnIotdr(
        [
          'fleet',
          '--devices',
          '2',
          '--auth',
          'token',
          '--name',
          'tok',
          '--duration',
          '3',
          '--config',
          configPath,
        ],
        { IOTDR_HOME: home },
      );
      expect(await tokens.exited, tokens.output()).toBe(0);
      expect(tokens.output()).toContain('iotdr fleet: 2 devices (token) onboarded in us-east');
      expect(tokens.output()).toMatch(/\nus-east\s+2\s+\d+/);
      await eventually(
        async () => (await totals()).devices >= 10,
        'the two token devices in analytics',
        60_000,
      );

      // Bad input: a usage error, nothing onboarded.
      const bad = spawnIotdr(['fleet', '--devices', 'many', '--config', configPath], { IOTDR_HOME: home });
      expect(await bad.exited).toBe(2);
      expect(bad.output()).toContain('--devices: an integer from 1 to 10000');
    } finally {
      up.child.kill('SIGINT');
      await up.exited;
      await rm(home, { recursive: true, force: true });
    }
    expect(up.output()).toContain('iotdr up: stopped');
  }, 120_000);
});

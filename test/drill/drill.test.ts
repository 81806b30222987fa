/**
 * A whole drill, as `iotdr drill --devices 50` runs it: real region, control and analytics
 * processes, 50 devices on the SDK in worker threads, the primary's broker crashed for real. Every
 * device must reconnect to the secondary and nothing accepted may be lost.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { passed, renderReport, runDrill } from '../../src/drill/index.js';
import { startDrillPlatform } from '../../src/processes/index.js';
import { freePorts } from '../harness/process.js';

describe('iotdr drill', () => {
  let dir: string;
  let configFile: string;
  let yaml: Record<string, unknown>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-drill-test-'));
    const [api, cnc, mqtt, control, dns, analytics] = await freePorts(6);
    yaml = {
      logging: { level: 'warn' },
      regions: ['us-east', 'us-west'].map((name, i) => ({
        name,
        priority: i + 1,
        address: `127.0.0.${81 + i}`,
        api: { port: api },
        cnc: { port: cnc },
        mqtt: { port: mqtt },
      })),
      control: { address: '127.0.0.80', port: control },
      dns: { address: '127.0.0.80', port: dns, ttl: 1 },
      analytics: { address: '127.0.0.80', port: analytics },
      failover: { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 3 },
      replication: { waitMs: 500 },
    };
    configFile = join(dir, 'iotdr.yaml');
    await writeFile(configFile, JSON.stringify(yaml));
  });

  afterAll(async () => {
    if (!process.env.KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('moves 50 devices off a crashed broker and back, with every device back and nothing lost', async () => {
    const lines: string[] = [];
    const report = await runDrill({
      startPlatform: startDrillPlatform,
      config: parseConfig(yaml),
      configFile,
      stateDir: join(dir, 'state'),
      env: { ...process.env },
      cwd: dir,
      devices: 50,
      auth: 'mtls',
      fault: 'broker-crash',
      failback: true,
      ratePerSecond: 100,
      onProgress: (line) => lines.push(line),
    });
    const table = renderReport(report).join('\n');
    if (process.env.SHOW) console.log(lines.join('\n'), '\n', table);
    expect(report.reconnected, table).toBe(50);
    expect(report.messages.lost, table).toBe(0);
    expect(report.messages.accepted, table).toBeGreaterThan(0);
    expect(report.registry, table).toEqual({
      changesBeforeFault: 20,
      missingInSecondary: 0,
      missingAfterRecovery: 0,
    });
    expect(report.commands.lost, table).toBe(0);
    expect(passed(report), table).toBe(true);
    expect(report).toMatchObject({ fault: 'broker-crash', devices: 50, from: 'us-east', to: 'us-west' });
    // Every factor in its order: probes fail, the threshold is crossed, then the decision and DNS.
    const f = report.factors;
    expect(f.firstFailedProbeMs).not.toBeNull();
    expect(f.thresholdCrossedMs ?? 0).toBeGreaterThanOrEqual(f.firstFailedProbeMs ?? 0);
    expect(f.decidedMs ?? 0).toBeGreaterThanOrEqual(f.thresholdCrossedMs ?? 0);
    expect(f.dnsUpdatedMs ?? 0).toBeGreaterThanOrEqual(f.decidedMs ?? 0);
    expect(report.rtoMs).not.toBeNull();
    expect(report.predictedRtoMs).toBe(200 * 3 + 400 + 1000);
    // The ceiling, measured in this run on the secondary; the physical limit built on it.
    expect(report.ceiling, table).toMatchObject({ auth: 'mtls', refused: 0 });
    expect(report.ceiling.connectsPerSecond, table).toBeGreaterThan(0);
    expect(report.physicalLimitMs).toBe(Math.round(200 * 3 + (50 / report.ceiling.connectsPerSecond) * 1000));
    expect(report.reconnectRate, table).toBeGreaterThan(0);
    // Every device had a session with us-east: us-west, sharing the ticket keys, resumes it.
    expect(report.resumed, table).toBe(report.reconnected);
    expect(table).toContain('RTO / physical limit');
    expect(lines.some((l) => l.includes('connects/s'))).toBe(true);
    expect(lines.some((l) => l.includes('fault injected'))).toBe(true);
    // The way back, once the secondary's own changes had replicated home.
    expect(report.failback, table).toMatchObject({
      from: 'us-west',
      to: 'us-east',
      reconnected: 50,
      registry: { changesBeforeFailback: 20, missingInPrimary: 0 },
      commands: { issuedBeforeFailback: 10, lost: 0 },
    });
    expect(report.failback?.rtoMs).not.toBeNull();
    expect(table).toContain('PASS');
  }, 240_000);
});

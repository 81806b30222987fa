/**
 * A drill with three control nodes over a real three-member etcd cluster, as
 * `iotdr drill --control-nodes 3 --fault control-leader-crash+region-crash` runs it: the primary
 * region and the leading control node get SIGKILL at the same moment. Another node leads the
 * switch, every device comes back and nothing accepted is lost.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { passed, renderReport, runDrill } from '../../src/drill/index.js';
import { startDrillPlatform } from '../../src/processes/index.js';
import { etcdSkipReason } from '../harness/etcd.js';
import { freePorts } from '../harness/process.js';

const skip = etcdSkipReason();
const LEASE_TTL_MS = 2000;

describe.skipIf(skip !== undefined)('iotdr drill with control nodes', () => {
  let dir: string;
  let configFile: string;
  let yaml: Record<string, unknown>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-drill-nodes-'));
    const [api, cnc, mqtt, analytics, nodeApi, nodeDns, client, peer] = await freePorts(8);
    yaml = {
      logging: { level: 'warn' },
      regions: ['us-east', 'us-west'].map((name, i) => ({
        name,
        priority: i + 1,
        address: `127.0.0.${91 + i}`,
        api: { port: api },
        cnc: { port: cnc },
        mqtt: { port: mqtt },
      })),
      dns: { ttl: 1 },
      analytics: { address: '127.0.0.90', port: analytics },
      control: {
        nodes: [1, 2, 3].map((i) => ({
          name: `ctl-${i}`,
          address: `127.0.0.${93 + i}`,
          port: nodeApi,
          dnsPort: nodeDns,
        })),
        etcd: {
          members: [1, 2, 3].map((i) => ({
            name: `etcd-${i}`,
            address: `127.0.0.${96 + i}`,
            clientPort: client,
            peerPort: peer,
          })),
          leaseTtlMs: LEASE_TTL_MS,
        },
      },
      failover: { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 3 },
      replication: { waitMs: 500 },
    };
    configFile = join(dir, 'iotdr.yaml');
    await writeFile(configFile, JSON.stringify(yaml));
  });

  afterAll(async () => {
    if (!process.env.KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('moves 20 devices off a crashed primary while the leading control node crashes too, nothing lost', async () => {
    const lines: string[] = [];
    const report = await runDrill({
      startPlatform: startDrillPlatform,
      config: parseConfig(yaml),
      configFile,
      stateDir: join(dir, 'state'),
      env: { ...process.env },
      cwd: dir,
      devices: 20,
      auth: 'mtls',
      fault: 'region-crash',
      controlLeaderCrash: true,
      failback: false,
      ratePerSecond: 40,
      onProgress: (line) => lines.push(line),
    });
    const table = renderReport(report).join('\n');
    if (process.env.SHOW) console.log(lines.join('\n'), '\n', table);
    expect(report, table).toMatchObject({
      fault: 'control-leader-crash+region-crash',
      devices: 20,
      reconnected: 20,
      from: 'us-east',
      to: 'us-west',
      messages: { lost: 0, devicesWithGaps: 0 },
    });
    expect(report.messages.accepted, table).toBeGreaterThan(0);
    expect(passed(report), table).toBe(true);
    // The killed leader did not make the switch: another node did, after its election.
    const leader = report.controlLeader;
    expect(leader, table).toBeDefined();
    expect(leader?.next, table).not.toBeNull();
    expect(leader?.next, table).not.toBe(leader?.killed);
    expect(report.predictedRtoMs).toBe(Math.max(200 * 3 + 400, LEASE_TTL_MS + 500) + 1000);
    expect(report.limitMs).toBe(Math.max(200 * 3, LEASE_TTL_MS + 500) + report.ownReconnectMs);
    expect(table).toContain(`${leader?.killed} killed with the fault`);
    expect(lines.some((l) => l.includes('killing the leading control node'))).toBe(true);
  }, 240_000);
});

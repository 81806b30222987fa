/**
 * A drill with every region's events in JetStream on a three-server NATS cluster, as
 * `iotdr drill --events jetstream --nats-servers 3 --fault nats-node-crash+region-crash` runs it:
 * the primary region gets SIGKILL and, at the same moment, so does the NATS server leading the
 * secondary's stream, where the fleet is moving. Every device comes back and nothing accepted is
 * lost.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { passed, renderReport, runDrill } from '../../src/drill/index.js';
import { natsStreamLeader, startDrillPlatform } from '../../src/processes/index.js';
import { natsSkipReason } from '../harness/nats.js';
import { freePorts } from '../harness/process.js';

const skip = natsSkipReason();

describe.skipIf(skip !== undefined)('iotdr drill on JetStream', () => {
  let dir: string;
  let configFile: string;
  let yaml: Record<string, unknown>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-drill-js-'));
    const [api, cnc, mqtt, analytics, control, dns, ...nats] = await freePorts(12);
    yaml = {
      logging: { level: 'warn' },
      events: { engine: 'jetstream' },
      regions: ['us-east', 'us-west'].map((name, i) => ({
        name,
        priority: i + 1,
        address: `127.0.0.${101 + i}`,
        api: { port: api },
        cnc: { port: cnc },
        mqtt: { port: mqtt },
        // Three servers per region on the region's address, ports in a row.
        nats: {
          servers: [0, 1, 2].map((j) => ({
            name: `nats-${j + 1}`,
            address: `127.0.0.${101 + i}`,
            clientPort: nats[j],
            clusterPort: nats[3 + j],
          })),
        },
      })),
      dns: { ttl: 1, address: '127.0.0.100', port: dns },
      control: { address: '127.0.0.100', port: control },
      analytics: { address: '127.0.0.100', port: analytics },
      failover: { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 3 },
      replication: { waitMs: 500 },
    };
    configFile = join(dir, 'iotdr.yaml');
    await writeFile(configFile, JSON.stringify(yaml));
  });

  afterAll(async () => {
    if (!process.env.KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('moves 20 devices off a crashed primary while the secondary’s stream leader crashes too, nothing lost', async () => {
    const lines: string[] = [];
    const config = parseConfig(yaml);
    const stateDir = join(dir, 'state');
    const report = await runDrill({
      startPlatform: startDrillPlatform,
      config,
      configFile,
      stateDir,
      env: { ...process.env },
      cwd: dir,
      devices: 20,
      auth: 'mtls',
      fault: 'region-crash',
      natsNodeCrash: true,
      streamLeader: (region) => natsStreamLeader(config, stateDir, region),
      failback: false,
      ratePerSecond: 40,
      onProgress: (line) => lines.push(line),
    });
    const table = renderReport(report).join('\n');
    if (process.env.SHOW) console.log(lines.join('\n'), '\n', table);
    expect(report, table).toMatchObject({
      fault: 'nats-node-crash+region-crash',
      devices: 20,
      reconnected: 20,
      from: 'us-east',
      to: 'us-west',
      messages: { lost: 0, devicesWithGaps: 0 },
      natsNode: { region: 'us-west', ledStream: true },
    });
    expect(report.messages.accepted, table).toBeGreaterThan(0);
    expect(passed(report), table).toBe(true);
    expect(table).toContain(`us-west's ${report.natsNode?.server} killed with the fault`);
  }, 300_000);
});

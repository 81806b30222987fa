/**
 * `iotdr checker` as a process, with control nodes: it reports every probe to every node, each over
 * mutual TLS and checking that node's own site certificate; with --control URL to that node only.
 * The nodes are HTTPS servers with the nodes' site certificates that take POST /v1/observations.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type IotdrConfig, parseConfig } from '../../src/config/index.js';
import { siteOfSocket, siteServerOptions } from '../../src/http/index.js';
import { describeSite, loadOrCreateCa } from '../../src/pki/index.js';
import { controlSiteOf, siteCredentials } from '../../src/processes/index.js';
import { eventually } from '../harness/cluster.js';
import { freePort, type IotdrProcess, spawnIotdr } from '../harness/process.js';

interface Report {
  /** The site the caller's certificate names. */
  from: string | undefined;
  checker: string;
}

interface FakeNode {
  name: string;
  port: number;
  server: Server;
  reports: Report[];
}

describe('iotdr checker with control nodes', () => {
  let stateDir: string;
  let configPath: string;
  let config: IotdrConfig;
  let nodes: FakeNode[];
  let running: IotdrProcess | undefined;

  /** A control node that takes observations, with the node's site certificate. */
  async function node(name: string, port: number): Promise<FakeNode> {
    const tls = await siteCredentials(config, stateDir, controlSiteOf(name), { addresses: ['127.0.0.1'] });
    const reports: Report[] = [];
    const server = createServer(siteServerOptions(tls), (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const site = siteOfSocket(req.socket);
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          checker: string;
          observations: [];
        };
        if (req.method === 'POST' && req.url === '/v1/observations')
          reports.push({ from: site && describeSite(site), checker: body.checker });
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accepted: body.observations.length }));
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return { name, port: (server.address() as AddressInfo).port, server, reports };
  }

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'iotdr-checker-'));
    await loadOrCreateCa(join(stateDir, 'pki'));
    const ports = { a: await freePort(), b: await freePort() };
    const yaml = {
      logging: { level: 'silent' },
      // Nothing answers there: the probes fail, and are reported all the same.
      regions: [
        {
          name: 'us-east',
          priority: 1,
          address: '127.0.0.1',
          api: { port: await freePort() },
          mqtt: { port: 0 },
          cnc: { port: 0 },
        },
      ],
      failover: { checkers: ['ctl-a', 'ctl-b', 'remote'], intervalMs: 200, timeoutMs: 100 },
      control: {
        nodes: [
          { name: 'ctl-a', address: '127.0.0.1', port: ports.a, dnsPort: await freePort() },
          { name: 'ctl-b', address: '127.0.0.1', port: ports.b, dnsPort: await freePort() },
        ],
        etcd: {
          members: [
            {
              name: 'etcd-1',
              address: '127.0.0.1',
              clientPort: await freePort(),
              peerPort: await freePort(),
            },
          ],
        },
      },
    };
    config = parseConfig(yaml);
    configPath = join(stateDir, 'iotdr.yaml');
    // JSON is YAML.
    await writeFile(configPath, JSON.stringify(yaml));
    nodes = [await node('ctl-a', ports.a), await node('ctl-b', ports.b)];
  });

  afterEach(async () => {
    if (running) {
      running.child.kill('SIGTERM');
      await running.exited;
      running = undefined;
    }
    for (const n of nodes) n.reports.splice(0);
  });

  afterAll(async () => {
    for (const n of nodes ?? []) await new Promise((resolve) => n.server.close(resolve));
    await rm(stateDir, { recursive: true, force: true });
  });

  const checker = (...args: string[]) => {
    running = spawnIotdr(['checker', '--id', 'remote', '--config', configPath, ...args], {
      IOTDR_HOME: stateDir,
    });
    return running;
  };

  it('reports to every control node, each checking that node’s site, as its own site', async () => {
    const proc = checker();
    await eventually(
      async () => nodes.every((n) => n.reports.length > 0),
      'observations at every node',
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${proc.output()}`);
    });
    for (const n of nodes)
      expect(n.reports[0], n.name).toEqual({ from: 'checker remote', checker: 'remote' });
  });

  it('reports to the node at --control URL only', async () => {
    const [a, b] = nodes as [FakeNode, FakeNode];
    const proc = checker('--control', `https://127.0.0.1:${b.port}`);
    // Two probes in a row reach ctl-b; none went to ctl-a.
    await eventually(async () => b.reports.length >= 2, 'two reports at ctl-b', 30_000).catch(
      (error: Error) => {
        throw new Error(`${error.message}\n${proc.output()}`);
      },
    );
    expect(a.reports).toEqual([]);
  });

  it('refuses a --control URL that is no control node’s', async () => {
    const proc = checker('--control', 'https://127.0.0.1:1');
    expect(await proc.exited).toBe(1);
    running = undefined;
    expect(proc.output()).toMatch(
      /--control https:\/\/127\.0\.0\.1:1 is not the URL of one of the 2 control nodes/,
    );
  });
});

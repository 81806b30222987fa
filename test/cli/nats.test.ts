/**
 * `iotdr nats --region R --server NAME` as a real process: over mutual TLS a client with the
 * region's site certificate opens the region's event stream on it and appends, and SIGTERM stops
 * it cleanly with nats-server gone; over plain-loopback links it is plain and SIGINT stops it; a
 * server or region the configuration does not list is a configuration error naming those there
 * are, a missing option a usage error, and a missing binary says what to install. A cluster's
 * routes authenticate with the region's secret, made once on the state directory and never logged;
 * a host without the CA's key is told to copy it. A store made for another server set is refused,
 * and `iotdr up --events jetstream` deletes its own servers' stores of another run's set.
 */
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { waitUntil } from '../../src/common/index.js';
import {
  embeddedNats,
  type IotdrConfig,
  natsRouteSecretPath,
  natsServersOf,
  natsSiteOf,
  parseConfig,
  type RegionConfig,
} from '../../src/config/index.js';
import { JetStreamEventBus } from '../../src/events/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import {
  checkNatsData,
  natsServerAnswers,
  siteCredentials,
  startNatsServer,
} from '../../src/processes/index.js';
import { natsSkipReason } from '../harness/nats.js';
import { freePorts, type IotdrProcess, killGroup, ROOT, spawnIotdr } from '../harness/process.js';

const skip = natsSkipReason();
/** The region, and its NATS server, on an address of their own. */
const ADDRESS = '127.0.0.91';
/** A cluster's servers each on an address of its own: they then call each other from 127.0.0.1. */
const CLUSTER = ['127.0.0.92', '127.0.0.93', '127.0.0.94'];

const homes: string[] = [];
const processes: IotdrProcess[] = [];
afterEach(async () => {
  for (const proc of processes.splice(0)) killGroup(proc);
  for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
});

/**
 * A state directory with its CA, and a configuration of one region whose events are in its NATS:
 * a server nats-1 on the region's address, or nats-1… on `addresses`.
 */
async function platform(
  links: 'mutual-tls' | 'plain-loopback',
  addresses: readonly string[] = [ADDRESS],
): Promise<{ home: string; file: string; config: IotdrConfig; region: RegionConfig }> {
  const home = await mkdtemp(join(tmpdir(), 'iotdr-nats-cmd-'));
  homes.push(home);
  await loadOrCreateCa(join(home, 'pki'));
  const [api] = await freePorts(1, ADDRESS);
  const servers = await Promise.all(
    addresses.map(async (address, i) => {
      const [clientPort, clusterPort] = await freePorts(2, address);
      return { name: `nats-${i + 1}`, address, clientPort, clusterPort };
    }),
  );
  const yaml = {
    links: { mode: links },
    events: { engine: 'jetstream' },
    regions: [
      {
        name: 'us-east',
        priority: 1,
        address: ADDRESS,
        api: { port: api },
        nats: { servers },
      },
    ],
  };
  const file = join(home, 'iotdr.yaml');
  await writeFile(file, JSON.stringify(yaml));
  const config = parseConfig(yaml);
  return { home, file, config, region: config.regions[0] as RegionConfig };
}

function natsServer(home: string, file: string, name = 'nats-1'): IotdrProcess {
  const proc = spawnIotdr(
    ['nats', '--region', 'us-east', '--server', name, '--config', file],
    { IOTDR_HOME: home },
    ROOT,
    { group: true },
  );
  processes.push(proc);
  return proc;
}

/** The pid of the nats-server the command runs, from the line it prints at start. */
async function natsPid(proc: IotdrProcess): Promise<number> {
  let pid = 0;
  await waitUntil(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`iotdr nats exited:\n${proc.output()}`);
      pid = Number(/\(nats-server pid (\d+)\)/.exec(proc.output())?.[1] ?? 0);
      return pid > 0;
    },
    { timeoutMs: 20_000, what: 'iotdr nats to start nats-server', fatal: () => true },
  );
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Opens the region's stream once the server answers, appends one event, and returns its offset. */
async function appendOne(options: Parameters<typeof JetStreamEventBus.open>[0]): Promise<number> {
  let bus: JetStreamEventBus | undefined;
  await waitUntil(
    async () => {
      bus = await JetStreamEventBus.open({ ...options, nats: { ...options.nats, timeoutMs: 500 } });
      return true;
    },
    { timeoutMs: 20_000, what: "the region's stream to open" },
  );
  try {
    const result = await bus?.append({
      id: 'e-1',
      time: Date.now(),
      source: { type: 'rule', rule: 'telemetry' },
      topic: 'dev/sensor-1/telemetry',
      payload: { type: 'json', value: { temp: 21.5 } },
    });
    return result?.offset ?? 0;
  } finally {
    await bus?.close();
  }
}

async function cli(home: string, ...args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const io: CliIo = { out: () => {}, err: (l) => err.push(l), env: { IOTDR_HOME: home }, cwd: home };
  return { code: await main(args, io), err: err.join('\n') };
}

describe.skipIf(skip !== undefined)('iotdr nats', () => {
  it("runs a region's server over mutual TLS that the region appends to, and stops cleanly on SIGTERM", async () => {
    const { home, file, config, region } = await platform('mutual-tls');
    const proc = natsServer(home, file);
    const pid = await natsPid(proc);
    const tls = await siteCredentials(
      config,
      home,
      { kind: 'region', name: 'us-east' },
      { addresses: [ADDRESS] },
    );
    const [url] = natsServersOf(config, region);
    expect(url).toMatch(/^tls:\/\/127\.0\.0\.91:\d+$/);
    const nats = {
      servers: [url as string],
      name: 'test region',
      tls: { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem },
    };
    expect(await appendOne({ region: 'us-east', nats })).toBe(1);
    expect(proc.output()).toContain(`iotdr nats: server nats-1 of us-east at ${url}`);
    // The configuration names certificate and key files: only this user reads it.
    expect((await stat(join(home, 'nats', 'us-east', 'nats-1.conf'))).mode & 0o777).toBe(0o600);

    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(alive(pid)).toBe(false);
  }, 60_000);

  it('runs three servers on addresses of their own as one cluster over mutual TLS, holding three copies of each event', async () => {
    const { home, file, config, region } = await platform('mutual-tls', CLUSTER);
    const procs = ['nats-1', 'nats-2', 'nats-3'].map((name) => natsServer(home, file, name));
    await Promise.all(procs.map(natsPid));
    const tls = await siteCredentials(
      config,
      home,
      { kind: 'region', name: 'us-east' },
      { addresses: [ADDRESS] },
    );
    const nats = {
      servers: natsServersOf(config, region),
      name: 'test region',
      tls: { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem },
    };
    // Three replicas: the stream is made only once the three servers are one cluster.
    expect(await appendOne({ region: 'us-east', nats, replicas: 3 })).toBe(1);
    for (const proc of procs) proc.child.kill('SIGTERM');
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0]);

    // They made it with one route secret, made once here and private; it is in no log.
    const secretFile = natsRouteSecretPath(home, 'us-east');
    expect((await stat(secretFile)).mode & 0o777).toBe(0o600);
    const secret = (await readFile(secretFile, 'utf8')).trim();
    expect(secret).toMatch(/^[\w-]{43}$/);
    for (const [i, proc] of procs.entries()) {
      const conf = JSON.parse(await readFile(join(home, 'nats', 'us-east', `nats-${i + 1}.conf`), 'utf8'));
      expect(conf.cluster.authorization).toMatchObject({ user: 'iotdr-route', password: secret });
      expect(conf.cluster.routes).toHaveLength(2);
      for (const route of conf.cluster.routes) expect(route).toContain(`iotdr-route:${secret}@`);
      expect(proc.output()).toContain('Route connection created');
      expect(proc.output()).not.toContain(secret);
    }
  }, 90_000);

  it("tells a host without the CA's key to copy the region's route secret, and uses the copy", async () => {
    const { home, config } = await platform('mutual-tls', CLUSTER);
    // The server's certificate, issued where the CA's key was; then the key goes.
    await siteCredentials(config, home, natsSiteOf('us-east', 'nats-1'), {
      addresses: [CLUSTER[0] as string, '127.0.0.1'],
    });
    await rename(join(home, 'pki', 'ca.key'), join(home, 'ca.key.elsewhere'));
    const secretFile = natsRouteSecretPath(home, 'us-east');
    // A binary that exits at once: what is checked is what happens before it starts.
    const options = {
      config,
      stateDir: home,
      region: 'us-east',
      server: 'nats-1',
      findBinary: () => '/bin/false',
    };
    await expect(startNatsServer(options)).rejects.toMatchObject({
      code: 'IOTDR_CONFIG_INVALID',
      message: expect.stringContaining(
        `no route secret for region us-east's NATS cluster at ${secretFile}, and no CA key here`,
      ),
    });

    await mkdir(join(home, 'secrets'), { recursive: true, mode: 0o700 });
    await writeFile(secretFile, 'copied-from-the-ca-host\n', { mode: 0o600 });
    const server = await startNatsServer(options);
    await server.exited;
    const conf = JSON.parse(await readFile(server.configFile, 'utf8'));
    expect(conf.cluster.authorization.password).toBe('copied-from-the-ca-host');
  });

  it('refuses a store made for another server set, naming it; checkNatsData deletes the region’s stores when told to', async () => {
    const { home, config, region } = await platform('plain-loopback');
    const alone = await startNatsServer({ config, stateDir: home, region: 'us-east', server: 'nats-1' });
    await waitUntil(() => natsServerAnswers(ADDRESS, region.nats?.servers[0]?.clientPort ?? 0), {
      timeoutMs: 20_000,
      what: 'nats-1 to answer with JetStream',
    });
    alone.stop();
    expect((await alone.exited).code).toBe(0);
    const storeDir = join(home, 'nats', 'us-east', 'nats-1');
    expect(JSON.parse(await readFile(join(home, 'nats', 'us-east', 'nats-1.cluster.json'), 'utf8'))).toEqual({
      cluster: 'iotdr-us-east',
      routes: [],
    });
    // The same set again: its store is its own.
    expect(await checkNatsData(config, home, [])).toEqual([]);

    // nats-1 now one of three.
    const [a, b, c, d] = await freePorts(4, ADDRESS);
    const first = region.nats?.servers[0];
    const servers = [
      first,
      { name: 'nats-2', address: ADDRESS, clientPort: a, clusterPort: b },
      { name: 'nats-3', address: ADDRESS, clientPort: c, clusterPort: d },
    ];
    const three = parseConfig({
      links: { mode: 'plain-loopback' },
      events: { engine: 'jetstream' },
      regions: [
        { name: 'us-east', priority: 1, address: ADDRESS, api: { port: region.api.port }, nats: { servers } },
      ],
    });
    const refused = {
      code: 'IOTDR_NATS_DATA_OF_ANOTHER_CLUSTER',
      message: expect.stringContaining(
        `NATS server nats-1 of us-east: ${storeDir} holds its JetStream data as a server alone, not as regions[].nats.servers lists it (iotdr-us-east: routes ${ADDRESS}:${first?.clusterPort}, ${ADDRESS}:${b}, ${ADDRESS}:${d}); delete ${storeDir}`,
      ),
    };
    await expect(
      startNatsServer({
        config: three,
        stateDir: home,
        region: 'us-east',
        server: 'nats-1',
        findBinary: () => '/bin/false',
      }),
    ).rejects.toMatchObject(refused);
    await expect(checkNatsData(three, home, [])).rejects.toMatchObject(refused);

    const removed = await checkNatsData(three, home, ['us-east']);
    expect(removed).toMatchObject([{ region: 'us-east', server: 'nats-1', storeDir }]);
    await expect(stat(join(home, 'nats', 'us-east'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await checkNatsData(three, home, [])).toEqual([]);
  }, 60_000);

  it.skipIf(skip !== undefined)(
    "iotdr up --events jetstream starts a region's NATS afresh when its store is of another run's server count",
    async () => {
      const address = '127.0.0.95';
      const home = await mkdtemp(join(tmpdir(), 'iotdr-nats-up-'));
      homes.push(home);
      const [api] = await freePorts(1, address);
      const [analytics] = await freePorts(1);
      const region = {
        name: 'us-east',
        priority: 1,
        address,
        api: { port: api },
        cnc: { port: 0 },
        mqtt: { port: 0 },
      };
      const yaml = {
        regions: [region],
        analytics: { address: '127.0.0.1', port: analytics },
        // On the region's address, out of other tests' way.
        control: { address },
        dns: { address },
      };
      const file = join(home, 'iotdr.yaml');
      await writeFile(file, JSON.stringify(yaml));
      // nats-1 of a run with three servers: alone now, it would wait for two peers for ever.
      const earlier = parseConfig({
        ...yaml,
        events: { engine: 'jetstream' },
        regions: [{ ...region, nats: embeddedNats(region, 3) }],
      });
      const server = await startNatsServer({
        config: earlier,
        stateDir: home,
        region: 'us-east',
        server: 'nats-1',
      });
      await waitUntil(
        () =>
          stat(join(home, 'nats', 'us-east', 'nats-1', 'jetstream')).then(
            () => true,
            () => false,
          ),
        {
          timeoutMs: 20_000,
          what: 'nats-1 to make its store',
        },
      );
      server.stop();
      await server.exited;

      const proc = spawnIotdr(
        ['up', '--events', 'jetstream', '--fleet', '0', '--config', file],
        { IOTDR_HOME: home },
        ROOT,
        {
          group: true,
        },
      );
      processes.push(proc);
      await waitUntil(
        () => {
          if (proc.child.exitCode !== null) throw new Error(`iotdr up exited:\n${proc.output()}`);
          return proc.output().includes('iotdr is up');
        },
        {
          timeoutMs: 90_000,
          what: 'iotdr up to start',
          fatal: () => true,
          timeoutError: (m) => new Error(`${m}\n${proc.output()}`),
        },
      );
      expect(proc.output()).toContain(
        `iotdr up: ${join(home, 'nats', 'us-east')} held the NATS data of another run (3 servers): deleted, the NATS of us-east starts afresh`,
      );
      expect(
        JSON.parse(await readFile(join(home, 'nats', 'us-east', 'nats-1.cluster.json'), 'utf8')),
      ).toEqual({
        cluster: 'iotdr-us-east',
        routes: [],
      });
      proc.child.kill('SIGINT');
      expect(await proc.exited).toBe(0);
    },
    120_000,
  );

  it('runs plain on plain-loopback links, and stops cleanly on SIGINT', async () => {
    const { home, file, config, region } = await platform('plain-loopback');
    const proc = natsServer(home, file);
    const pid = await natsPid(proc);
    const servers = natsServersOf(config, region);
    expect(servers[0]).toMatch(/^nats:\/\//);
    expect(await appendOne({ region: 'us-east', nats: { servers, name: 'test region' } })).toBe(1);
    proc.child.kill('SIGINT');
    expect(await proc.exited).toBe(0);
    expect(alive(pid)).toBe(false);
  }, 60_000);

  it('names the servers and regions there are for a wrong one, and says what to install without nats-server', async () => {
    const { home, file, config } = await platform('plain-loopback');
    const server = await cli(home, 'nats', '--region', 'us-east', '--server', 'nats-9', '--config', file);
    expect(server.code).toBe(1);
    expect(server.err).toContain(
      '--server nats-9 is not in regions[0].nats.servers (nats-1) (IOTDR_CONFIG_INVALID)',
    );
    const region = await cli(home, 'nats', '--region', 'eu-west', '--server', 'nats-1', '--config', file);
    expect(region.code).toBe(1);
    expect(region.err).toContain('--region eu-west is not a region of the configuration (us-east)');
    const missing = await cli(home, 'nats', '--region', 'us-east', '--config', file);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('--server NAME is required');
    await expect(
      startNatsServer({
        config,
        stateDir: home,
        region: 'us-east',
        server: 'nats-1',
        findBinary: () => undefined,
      }),
    ).rejects.toMatchObject({
      code: 'IOTDR_NATS_NOT_FOUND',
      message: expect.stringContaining('apt-get install nats-server'),
    });
  });
});

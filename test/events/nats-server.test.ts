/**
 * The configuration file a region's NATS server runs on (`natsServerConfig`), as written, and as
 * nats-server 2.9 enforces it over mutual TLS with `clients`: the region's site connects and
 * appends, analytics' site reads with a durable consumer but may neither publish an event nor
 * change the stream, and a device certificate of the same CA (even one whose subject names the
 * region's site) or a certificate of another site kind is refused. A cluster's routes authenticate
 * with its secret: a server with a device certificate of the same CA but without the secret is
 * refused as a route, and the cluster's stream goes on unaffected.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import {
  connectNats,
  decodeEvent,
  encodeEvent,
  eventStreamName,
  eventSubject,
  findNatsServer,
  JetStreamEventBus,
  type NatsLink,
  type NatsServerSpec,
  natsServerConfig,
} from '../../src/events/index.js';
import { type CertificateAuthority, loadOrCreateCa, type SiteId, siteUri } from '../../src/pki/index.js';
import { natsSkipReason, type RunningNats, startNats } from '../harness/nats.js';
import { freePorts } from '../harness/process.js';
import { tempDir } from './support.js';

const BASE: NatsServerSpec = {
  name: 'nats-1',
  address: '127.0.0.11',
  clientPort: 4222,
  storeDir: '/state/nats/us-east/nats-1',
};
const TLS = { caFile: '/state/pki/ca.pem', certFile: '/state/n.pem', keyFile: '/state/n.key' };
const CLIENTS = {
  writers: ['urn:iotdr:site:region:us-east'],
  readers: ['urn:iotdr:site:analytics:analytics'],
};

const SECRET = 'Zm9vYmFyLXNlY3JldC1vZi10aGUtY2x1c3Rlcg';

const configOf = (spec: NatsServerSpec): any => JSON.parse(natsServerConfig(spec));

describe('natsServerConfig', () => {
  it('is plain without TLS: no client verification and no authorization, whatever clients say', () => {
    const config = configOf({ ...BASE, clients: CLIENTS });
    expect(config).toMatchObject({
      server_name: 'nats-1',
      listen: '127.0.0.11:4222',
      jetstream: { store_dir: '/state/nats/us-east/nats-1' },
    });
    expect(config.tls).toBeUndefined();
    expect(config.authorization).toBeUndefined();
  });

  it('verifies client certificates against the CA, and lets any of them in without clients', () => {
    const config = configOf({ ...BASE, tls: TLS });
    expect(config.tls).toEqual({
      cert_file: TLS.certFile,
      key_file: TLS.keyFile,
      ca_file: TLS.caFile,
      timeout: 2,
      verify: true,
    });
    expect(config.authorization).toBeUndefined();
  });

  it('maps a client certificate to its site with clients: writers may do anything, readers neither publish events nor change streams', () => {
    const config = configOf({ ...BASE, tls: TLS, clients: CLIENTS });
    expect(config.tls).toMatchObject({ verify_and_map: true, ca_file: TLS.caFile });
    expect(config.tls.verify).toBeUndefined();
    expect(config.authorization).toEqual({
      users: [
        { user: 'urn:iotdr:site:region:us-east' },
        {
          user: 'urn:iotdr:site:analytics:analytics',
          permissions: {
            publish: {
              deny: [
                'iotdr.events.>',
                '$JS.API.STREAM.CREATE.>',
                '$JS.API.STREAM.UPDATE.>',
                '$JS.API.STREAM.DELETE.>',
                '$JS.API.STREAM.PURGE.>',
                '$JS.API.STREAM.MSG.DELETE.>',
                '$JS.API.STREAM.RESTORE.>',
              ],
            },
          },
        },
      ],
    });
  });

  it('routes to every other server of the cluster with its secret; checks a route names its address only when routes are DNS names', () => {
    const byAddress = configOf({
      ...BASE,
      tls: TLS,
      cluster: {
        name: 'iotdr-us-east',
        clusterPort: 6222,
        routes: [
          { address: '127.0.0.11', clusterPort: 6222 },
          { address: '127.0.0.11', clusterPort: 6223 },
          { address: '::1', clusterPort: 6224 },
        ],
        secret: SECRET,
      },
    });
    expect(byAddress.cluster).toMatchObject({
      name: 'iotdr-us-east',
      listen: '127.0.0.11:6222',
      authorization: { user: 'iotdr-route', password: SECRET },
      routes: [
        `nats-route://iotdr-route:${SECRET}@127.0.0.11:6223`,
        `nats-route://iotdr-route:${SECRET}@[::1]:6224`,
      ],
      tls: { verify: true, ca_file: TLS.caFile },
    });
    // nats-server 2.9 matches it against DNS names alone: over addresses it refuses every route.
    expect(byAddress.cluster.tls.verify_cert_and_check_known_urls).toBeUndefined();

    const byName = configOf({
      ...BASE,
      address: 'nats-a.internal',
      tls: TLS,
      cluster: {
        name: 'iotdr-us-east',
        clusterPort: 6222,
        routes: [
          { address: 'nats-a.internal', clusterPort: 6222 },
          { address: 'nats-b.internal', clusterPort: 6222 },
        ],
        secret: 'a/b:c@d',
      },
    });
    // A secret given by hand may hold any character: the URL carries it encoded.
    expect(byName.cluster.routes).toEqual(['nats-route://iotdr-route:a%2Fb%3Ac%40d@nats-b.internal:6222']);
    expect(byName.cluster.authorization).toMatchObject({ password: 'a/b:c@d' });
    expect(byName.cluster.tls).toMatchObject({ verify_cert_and_check_known_urls: true });
  });
});

const skip = natsSkipReason();
const REGION = 'us-east';
const WRITER: SiteId = { kind: 'region', name: REGION };
const READER: SiteId = { kind: 'analytics', name: 'analytics' };

describe.skipIf(skip)(`NATS over mutual TLS with clients (${skip ?? 'nats-server'})`, () => {
  let nats: RunningNats;
  let ca: CertificateAuthority;
  let home: Awaited<ReturnType<typeof tempDir>>;
  const connections: NatsConnection[] = [];

  beforeAll(async () => {
    home = await tempDir();
    ca = await loadOrCreateCa(join(home.dir, 'pki'));
    nats = await startNats({
      stateDir: home.dir,
      clients: { writers: [siteUri(WRITER)], readers: [siteUri(READER)] },
    });
  }, 60_000);
  afterAll(async () => {
    for (const nc of connections) await nc.close().catch(() => {});
    await nats?.stop();
    await home?.remove();
  });

  function linkOf(cert: { certificatePem: string; privateKeyPem: string }, name: string): NatsLink {
    return {
      servers: nats.servers,
      name,
      tls: { ca: ca.certificatePem, cert: cert.certificatePem, key: cert.privateKeyPem },
    };
  }
  const siteLink = async (site: SiteId) =>
    linkOf(await ca.issueSiteCertificate({ site, ipAddresses: [], dnsNames: [] }), `test ${site.kind}`);
  const connected = async (link: NatsLink) => {
    const nc = await connectNats(link);
    connections.push(nc);
    return nc;
  };

  it("lets the region append and analytics read with a durable consumer, but refuses analytics' publish and stream changes", async () => {
    const bus = await JetStreamEventBus.open({ region: REGION, nats: await siteLink(WRITER) });
    const appended = await bus.append({
      id: 'e-1',
      time: 1_732_675_200_000,
      source: { type: 'rule', rule: 'telemetry' },
      topic: 'dev/sensor-1/telemetry',
      payload: { type: 'json', value: { temp: 21.5 } },
    });
    await bus.close();
    expect(appended).toEqual({ offset: 1, appended: true });

    const reader = await connected(await siteLink(READER));
    const jsm = await jetstreamManager(reader);
    const stream = eventStreamName(REGION);
    await jsm.consumers.add(stream, { durable_name: 'analytics', ack_policy: AckPolicy.Explicit });
    const consumer = await jetstream(reader).consumers.get(stream, 'analytics');
    const message = await consumer.next({ expires: 5000 });
    expect(message && decodeEvent(message.data, message.seq, REGION)).toMatchObject({
      id: 'e-1',
      offset: 1,
      payload: { type: 'json', value: { temp: 21.5 } },
    });
    expect(await message?.ackAck()).toBe(true);

    const forged = encodeEvent({
      id: 'forged',
      time: 1,
      source: { type: 'rule', rule: 'x' },
      topic: 't',
      payload: { type: 'json', value: 1 },
    });
    await expect(jetstream(reader, { timeout: 2000 }).publish(eventSubject(REGION), forged)).rejects.toThrow(
      /permissions violation/i,
    );
    await expect(jsm.streams.purge(stream)).rejects.toThrow(/permissions violation/i);
    await expect(jsm.streams.delete(stream)).rejects.toThrow(/permissions violation/i);
    expect((await jsm.streams.info(stream)).state.messages).toBe(1);
  });

  it('refuses a device certificate of the same CA, even one whose subject names the region, and a site of another kind', async () => {
    const device = await ca.issueDeviceCertificate();
    const posing = await ca.issueDeviceCertificate({ commonName: siteUri(WRITER) });
    for (const link of [
      linkOf(device, 'test device'),
      linkOf(posing, 'test device posing'),
      await siteLink({ kind: 'control', name: REGION }),
      await siteLink({ kind: 'region', name: 'eu-west' }),
    ]) {
      await expect(connectNats({ ...link, timeoutMs: 2000 }), link.name).rejects.toThrow(
        /authorization violation/i,
      );
    }
  });
});

/** A server's route count, from its monitoring port. */
async function routesOf(monitorPort: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/routez`);
  return ((await res.json()) as { num_routes: number }).num_routes;
}

describe.skipIf(skip)(`a NATS cluster's routes (${skip ?? 'nats-server'})`, () => {
  let nats: RunningNats;
  let ca: CertificateAuthority;
  let home: Awaited<ReturnType<typeof tempDir>>;
  let rogue: ChildProcess | undefined;

  beforeAll(async () => {
    home = await tempDir();
    ca = await loadOrCreateCa(join(home.dir, 'pki'));
    nats = await startNats({ nodes: 3, stateDir: home.dir });
  }, 90_000);
  afterAll(async () => {
    rogue?.kill('SIGKILL');
    await nats?.stop();
    await home?.remove();
  });

  it("refuses a server with a device certificate of the CA but without the cluster's secret, the stream unaffected", async () => {
    const bus = await JetStreamEventBus.open({ region: REGION, nats: nats.link(), replicas: 3 });
    const event = (id: string) => ({
      id,
      time: 1_732_675_200_000,
      source: { type: 'rule' as const, rule: 'telemetry' },
      topic: 'dev/sensor-1/telemetry',
      payload: { type: 'json' as const, value: { temp: 21.5 } },
    });
    expect(await bus.append(event('e-1'))).toEqual({ offset: 1, appended: true });

    // What a device on the cluster's network could run: the cluster's own configuration, a
    // device certificate of the CA, and no secret.
    const device = await ca.issueDeviceCertificate();
    const dir = join(home.dir, 'rogue');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'ca.pem'), ca.certificatePem);
    await writeFile(join(dir, 'device.pem'), device.certificatePem);
    await writeFile(join(dir, 'device.key'), device.privateKeyPem, { mode: 0o600 });
    const [clientPort, clusterPort, monitorPort] = (await freePorts(3)) as [number, number, number];
    const routes = nats.nodes.map((n) => ({ address: '127.0.0.1', clusterPort: n.clusterPort as number }));
    const config = configOf({
      name: 'rogue',
      address: '127.0.0.1',
      clientPort,
      storeDir: join(dir, 'store'),
      monitorPort,
      tls: {
        caFile: join(dir, 'ca.pem'),
        certFile: join(dir, 'device.pem'),
        keyFile: join(dir, 'device.key'),
      },
      cluster: {
        name: nats.clusterName as string,
        clusterPort,
        routes: [...routes, { address: '127.0.0.1', clusterPort }],
        secret: 'unknown',
      },
    });
    delete config.cluster.authorization;
    config.cluster.routes = routes.map((r) => `nats-route://127.0.0.1:${r.clusterPort}`);
    const configFile = join(dir, 'rogue.conf');
    await writeFile(configFile, JSON.stringify(config));
    const logFile = join(dir, 'rogue.log');
    rogue = spawn(findNatsServer() as string, ['-c', configFile, '-l', logFile], { stdio: 'ignore' });

    // Every server of the cluster refuses its route (without the secret they would take it).
    const refusals = async () =>
      (
        (await readFile(logFile, 'utf8').catch(() => '')).match(/Route Error 'Authorization Violation'/g) ??
        []
      ).length;
    await waitUntil(async () => (await refusals()) >= 3 || (await routesOf(monitorPort)) > 0, {
      timeoutMs: 20_000,
      what: "the cluster's servers to refuse the rogue's routes",
    });
    expect(await routesOf(monitorPort)).toBe(0);

    expect(await bus.append(event('e-2'))).toEqual({ offset: 2, appended: true });
    await bus.close();
    const nc = await connectNats(nats.link());
    try {
      const info = await (await jetstreamManager(nc)).streams.info(eventStreamName(REGION));
      expect(info.state.messages).toBe(2);
      const followers = nats.nodes.map((n) => n.name).filter((n) => n !== info.cluster?.leader);
      expect(info.cluster?.replicas?.map((r) => r.name).sort()).toEqual(followers);
    } finally {
      await nc.close();
    }
  }, 60_000);
});

/**
 * The configuration file a region's NATS server runs on (`natsServerConfig`), as written, and as
 * nats-server 2.9 enforces it over mutual TLS with `clients`: the region's site connects and
 * appends, analytics' site reads with a durable consumer but may neither publish an event nor
 * change the stream, and a device certificate of the same CA (even one whose subject names the
 * region's site) or a certificate of another site kind is refused.
 */
import { join } from 'node:path';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectNats,
  decodeEvent,
  encodeEvent,
  eventStreamName,
  eventSubject,
  JetStreamEventBus,
  type NatsLink,
  type NatsServerSpec,
  natsServerConfig,
} from '../../src/events/index.js';
import { type CertificateAuthority, loadOrCreateCa, type SiteId, siteUri } from '../../src/pki/index.js';
import { natsSkipReason, type RunningNats, startNats } from '../harness/nats.js';
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

  it('routes to every other server of the cluster; checks a route names its address only when routes are DNS names', () => {
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
      },
    });
    expect(byAddress.cluster).toMatchObject({
      name: 'iotdr-us-east',
      listen: '127.0.0.11:6222',
      routes: ['nats-route://127.0.0.11:6223', 'nats-route://[::1]:6224'],
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
      },
    });
    expect(byName.cluster.routes).toEqual(['nats-route://nats-b.internal:6222']);
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

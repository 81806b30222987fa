import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShadowTopics } from '../../src/broker/shadow/index.js';
import { uuidv7 } from '../../src/common/index.js';
import type { RegistryService } from '../../src/registry/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { recorder, request, topic } from './support.js';

function deadLetters(region: ClusterRegion | undefined): number {
  if (!region?.running) throw new Error('region not running');
  return [...region.running.replication.links.values()].reduce((n, l) => n + l.status().deadLetters, 0);
}

function serviceOf(region: ClusterRegion | undefined): RegistryService {
  if (!region?.running) throw new Error('region not running');
  return region.running.service;
}

/**
 * Two real regions replicating over HTTP. A device on us-east changes its shadow; the shadow
 * arrives in us-west, and us-west's engine tells the devices connected there (delta, documents,
 * delete) exactly as us-east's did.
 */
describe('shadows across regions', () => {
  let c: Cluster;
  let east: RegistryService;
  let west: RegistryService;
  const eastRec = recorder();
  const westRec = recorder();
  let eastShadows: ShadowTopics;
  let westShadows: ShadowTopics;

  beforeAll(async () => {
    c = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' });
    east = serviceOf(c.regions['us-east']);
    west = serviceOf(c.regions['us-west']);
    eastShadows = new ShadowTopics({ service: east, publish: eastRec.publish });
    westShadows = new ShadowTopics({ service: west, publish: westRec.publish });
    eastShadows.start();
    westShadows.start();
    await east.putThing('meter-7', {});
    await eventually(
      async () => (await west.store.get('thing', 'meter-7')) !== undefined,
      'thing in us-west',
    );
  });
  afterAll(async () => {
    await eastShadows?.stop();
    await westShadows?.stop();
    await c?.close();
  });

  it('carries a device update to the peer region, whose engine announces delta and documents', async () => {
    await eastShadows.handle(
      request(topic('meter-7', 'update'), { state: { desired: { interval: 30 } }, clientToken: 'dev-1' }),
    );
    expect(eastRec.on('update/accepted')).toHaveLength(1);
    const [delta] = await westRec.waitFor('update/delta');
    const [documents] = await westRec.waitFor('update/documents');
    expect(delta?.payload).toMatchObject({ state: { interval: 30 }, version: 1, clientToken: 'dev-1' });
    expect(documents?.payload).toMatchObject({
      previous: null,
      current: { state: { desired: { interval: 30 } }, version: 1 },
      clientToken: 'dev-1',
    });
    // The peer is not the requester: it announces the change but does not answer the request.
    expect(westRec.on('update/accepted')).toHaveLength(0);
    expect(await west.getShadow('meter-7')).toEqual(await east.getShadow('meter-7'));
    expect(eastRec.on('update/delta').map((m) => m.payload)).toEqual(
      westRec.on('update/delta').map((m) => m.payload),
    );
  });

  it('carries an API update and a delete, and changes made in us-west flow back', async () => {
    await east.updateShadow('meter-7', { state: { reported: { interval: 30 } } });
    await eventually(
      async () => westRec.on('update/documents').some((m) => m.payload.current.version === 2),
      'second documents message in us-west',
    );
    // Reported now matches desired: no new delta anywhere.
    expect(westRec.on('update/delta')).toHaveLength(1);
    expect((await west.getShadow('meter-7')).state.delta).toBeUndefined();

    await westShadows.handle(request(topic('meter-7', 'update'), { state: { reported: { fw: '1.2' } } }));
    await eventually(
      async () => (await east.getShadow('meter-7')).state.reported?.fw === '1.2',
      'us-west update in us-east',
    );

    await eastShadows.handle(request(topic('meter-7', 'delete'), { clientToken: 'del' }));
    const [deleted] = await westRec.waitFor('delete/accepted');
    expect(deleted?.payload).toMatchObject({ version: 3 });
    await expect(west.getShadow('meter-7')).rejects.toMatchObject({ code: 'IOTDR_SHADOW_NOT_FOUND' });
    await westShadows.handle(request(topic('meter-7', 'get')));
    expect(westRec.on('get/rejected')[0]?.payload).toMatchObject({ code: 404 });
  });

  it('dead-letters a replicated shadow document that breaks the limits, and applies nothing', async () => {
    await east.putThing('meter-8', {});
    await eventually(
      async () => (await west.store.get('thing', 'meter-8')) !== undefined,
      'meter-8 in us-west',
    );
    const before = deadLetters(c.regions['us-west']);
    const now = Date.now();
    // Written past the service, as a faulty or hostile peer could: only validation stands in the way.
    await east.transaction((tx) =>
      tx.apply({
        changeId: uuidv7(now),
        kind: 'shadow',
        key: 'meter-8',
        op: 'upsert',
        ref: null,
        doc: {
          thingName: 'meter-8',
          state: { desired: { blob: 'x'.repeat(9000) } },
          metadata: {},
          timestamp: 1,
          clientToken: null,
          previous: null,
        },
        version: 1,
        hlc: { wall: now + 1000, counter: 0 },
        origin: 'us-east',
        at: now,
      }),
    );
    await eventually(async () => deadLetters(c.regions['us-west']) > before, 'a dead letter in us-west');
    await expect(west.getShadow('meter-8')).rejects.toMatchObject({ code: 'IOTDR_SHADOW_NOT_FOUND' });
    expect(westRec.messages.some((m) => m.topic.includes('/meter-8/'))).toBe(false);
  });
});

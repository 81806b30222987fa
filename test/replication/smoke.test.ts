import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, eventually, startCluster } from '../harness/cluster.js';

describe('replication between two regions', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' });
  });
  afterAll(async () => c?.close());

  it('carries a thing both ways', async () => {
    const east = c.regions['us-east'];
    const west = c.regions['us-west'];
    if (!east || !west) throw new Error('regions');
    expect((await east.call('PUT', '/v1/things/from-east', { attributes: { a: '1' } })).status).toBe(201);
    await eventually(
      async () => (await west.call('GET', '/v1/things/from-east')).status === 200,
      'east → west',
    );
    expect((await west.call('PUT', '/v1/things/from-west', {})).status).toBe(201);
    await eventually(
      async () => (await east.call('GET', '/v1/things/from-west')).status === 200,
      'west → east',
    );
    // A link that reached the thing by copying a snapshot turns tailing with its next answered pull.
    await eventually(
      async () => (await east.call('GET', '/v1/replication/status')).body.links[0]?.state.type === 'tailing',
      'east tailing west',
    );
    const status = await east.call('GET', '/v1/replication/status');
    expect(status.body.links[0]).toMatchObject({ peer: 'us-west', state: { type: 'tailing' } });
  });
});

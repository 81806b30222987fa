import { expect, it } from 'vitest';
import { type Engine, eventually, startCluster } from '../harness/cluster.js';
import { converged, names, onEachEngine, putThings, regionOf } from './support.js';

/**
 * us-west goes down for a while: us-east keeps taking writes and shows the link retrying with the
 * error; once us-west is back, both catch up and end identical.
 */
async function peerDownThenBack(engine: Engine): Promise<void> {
  const c = await startCluster(['us-east', 'us-west'], engine);
  try {
    const east = regionOf(c, 'us-east');
    const west = regionOf(c, 'us-west');
    await putThings(east, names('before', 100), (n) => ({ phase: 'before', n }));
    await putThings(west, names('west-before', 20));
    await converged([east, west]);

    await west.stop();
    // Creates, updates and deletes while the peer is away.
    await putThings(east, names('during', 400), (n) => ({ phase: 'during', n }));
    await putThings(east, names('before', 50), () => ({ phase: 'updated' }));
    for (const name of names('before', 10, 50)) {
      expect((await east.call('DELETE', `/v1/things/${name}`)).status).toBe(204);
    }
    let seen: any;
    await eventually(async () => {
      const status = await east.call('GET', '/v1/replication/status');
      seen = status.body.links.find((l: { peer: string }) => l.peer === 'us-west');
      return seen?.state.type === 'retrying' && seen.lastError !== null;
    }, 'us-east showing the us-west link retrying');
    expect(seen.state.attempt).toBeGreaterThanOrEqual(1);
    expect(seen.lastError.message).toMatch(/us-west.*unreachable/);

    await west.start();
    // us-west writes too as soon as it is back: both directions catch up.
    await putThings(west, names('west-after', 50));
    const entities = await converged([east, west]);
    expect([...entities.keys()].filter((k) => k.startsWith('thing|during-'))).toHaveLength(400);
    expect(entities.get('thing|before-55')).toContain('"deleted":true');

    await eventually(async () => {
      const status = await east.call('GET', '/v1/replication/status');
      const link = status.body.links.find((l: { peer: string }) => l.peer === 'us-west');
      return link?.state.type === 'tailing' && link.lastError === null;
    }, 'us-east tailing us-west again');
    // What an operator sees through the API is the same in both regions.
    const list = async (r: typeof east) => (await r.call('GET', '/v1/things?limit=1000')).body.items;
    expect(await list(west)).toEqual(await list(east));
  } finally {
    await c.close();
  }
}

onEachEngine('a peer region down for a while, then back', (engine) => {
  it('keeps writing, shows the link retrying, then both catch up and are identical', async () => {
    await peerDownThenBack(engine());
  }, 60_000);
});

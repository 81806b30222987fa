import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { Clock } from '../../src/common/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import {
  type ChangeRecord,
  PostgresStore,
  type RegistryService,
  type RegistryStore,
  SqliteStore,
} from '../../src/registry/index.js';
import { RegistryTarget } from '../../src/replication/index.js';
import { type Engine, eventually, startCluster } from '../harness/cluster.js';
import { converged, entityView, inParallel, names, onEachEngine, putThings, regionOf } from './support.js';

/**
 * Many rounds of simultaneous PUTs of the same things with different attributes in both regions,
 * and deletes in one region racing updates in the other: once quiet, both regions hold the same
 * entities, down to version, HLC and origin.
 */
async function concurrentWrites(engine: Engine): Promise<void> {
  const c = await startCluster(['us-east', 'us-west'], engine);
  try {
    const east = regionOf(c, 'us-east');
    const west = regionOf(c, 'us-west');
    const contested = names('contested', 8);
    const victims = names('victim', 12);
    await putThings(east, victims, () => ({ state: 'new' }));
    await eventually(
      async () => (await west.call('GET', `/v1/things/${victims[victims.length - 1]}`)).status === 200,
      'the victims in us-west',
    );

    for (let round = 0; round < 25; round++) {
      const writes = contested.flatMap((name) =>
        [east, west].map(
          (r) => () => r.call('PUT', `/v1/things/${name}`, { attributes: { by: r.name, round: `${round}` } }),
        ),
      );
      const answers = await Promise.all(writes.map((w) => w()));
      for (const a of answers) expect([200, 201]).toContain(a.status);
    }
    // A delete in one region against an update of the same thing in the other, at the same time.
    await inParallel(victims, 12, async (name, i) => {
      const [deleter, updater] = i % 2 === 0 ? [east, west] : [west, east];
      const [del, put] = await Promise.all([
        deleter.call('DELETE', `/v1/things/${name}`),
        updater.call('PUT', `/v1/things/${name}`, { attributes: { state: 'updated' } }),
      ]);
      expect([204, 404]).toContain(del.status);
      expect([200, 201]).toContain(put.status);
    });

    const entities = await converged([east, west]);
    for (const name of contested) {
      const thing = entities.get(`thing|${name}`);
      expect(thing, name).toBeDefined();
      // The winner is one of the last round's writes... or a later round's of the other region.
      expect(thing).toMatch(/"by":"us-(east|west)"/);
    }
    // The API answers the same in both regions, for the racing deletes too.
    for (const name of [...contested, ...victims]) {
      const [a, b] = await Promise.all([
        east.call('GET', `/v1/things/${name}`),
        west.call('GET', `/v1/things/${name}`),
      ]);
      expect(b.status, name).toBe(a.status);
      const { requestId: _a, ...bodyA } = a.body;
      const { requestId: _b, ...bodyB } = b.body;
      expect(bodyB, name).toEqual(bodyA);
    }
  } finally {
    await c.close();
  }
}

async function openStore(engine: Engine, dir: string, name: string): Promise<RegistryStore> {
  const store =
    engine.engine === 'sqlite'
      ? new SqliteStore({ path: join(dir, `${name}.db`) })
      : new PostgresStore({
          connectionString: engine.url,
          schema: `hlc_${process.pid}_${name}_${Math.floor(Math.random() * 1e9)}`,
        });
  await store.init();
  return store;
}

/**
 * us-west's clock runs a minute ahead of us-east's. us-east applies us-west's write of a thing
 * while a client of us-east writes the same thing, in the same store transaction batch. The local
 * write comes after the applied one, so it must carry a later HLC; otherwise us-west finds it
 * older than what it has, drops it, and the two regions keep different things forever.
 */
async function localWriteRacingAnApply(engine: Engine): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-hlc-'));
  const eastClock: Clock = { now: () => Date.now() };
  const westClock: Clock = { now: () => Date.now() + 60_000 };
  const eastStore = await openStore(engine, dir, 'us_east');
  const westStore = await openStore(engine, dir, 'us_west');
  try {
    const east = regionRegistryService({ store: eastStore, region: 'us-east', clock: eastClock });
    const west = regionRegistryService({ store: westStore, region: 'us-west', clock: westClock });
    await east.init();
    await west.init();
    const ownChanges = async (s: RegistryService): Promise<ChangeRecord[]> =>
      (await s.changes({ after: 0, limit: 1000, origin: s.region })).changes;

    await west.putThing('door-1', { attributes: { by: 'us-west' } });
    const fromWest = await ownChanges(west);
    const intoEast = new RegistryTarget(east);
    // Both queued in the same tick: the store folds them into one transaction batch.
    const [applied, local] = await Promise.all([
      intoEast.applyChanges('us-west', fromWest, fromWest[fromWest.length - 1]?.seq ?? 0),
      east.putThing('door-1', { attributes: { by: 'us-east' } }),
    ]);
    expect(applied.outcomes).toEqual(['applied']);
    expect(local.item.version).toBe(2);

    const fromEast = await ownChanges(east);
    const result = await new RegistryTarget(west).applyChanges(
      'us-east',
      fromEast,
      fromEast[fromEast.length - 1]?.seq ?? 0,
    );
    expect(result.outcomes).toEqual(['applied']);
    const [a, b] = await Promise.all([eastStore.get('thing', 'door-1'), westStore.get('thing', 'door-1')]);
    if (!a || !b) throw new Error('door-1 missing');
    expect(entityView(b)).toBe(entityView(a));
    expect(a.doc?.attributes).toEqual({ by: 'us-east' });
  } finally {
    await eastStore.close();
    await westStore.close();
    await rm(dir, { recursive: true, force: true });
  }
}

onEachEngine('the same entity changed concurrently in two regions', (engine) => {
  it('converges to identical entities after simultaneous PUTs and delete-vs-update races', async () => {
    await concurrentWrites(engine());
  }, 60_000);

  it('a local write racing the apply of a peer with a clock ahead still wins everywhere', async () => {
    await localWriteRacingAnApply(engine());
  }, 30_000);
});

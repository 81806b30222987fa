import { expect, it } from 'vitest';
import { type ClusterRegion, type Engine, eventually, startCluster } from '../harness/cluster.js';
import {
  allTailing,
  changeLog,
  converged,
  duplicates,
  inParallel,
  type LoggedChange,
  names,
  onEachEngine,
  putThings,
  regionOf,
  running,
} from './support.js';

const REGIONS = ['us-east', 'us-west', 'eu-west'];

/** Creates, updates and deletes things of its own in the region; returns how many changes it made. */
async function localWork(r: ClusterRegion): Promise<number> {
  const own = names(`mesh-${r.name}`, 120);
  await putThings(r, own, () => ({ step: 'created' }), 8);
  await putThings(r, own.slice(0, 40), () => ({ step: 'updated' }), 8);
  await inParallel(own.slice(100), 8, async (name) => {
    expect((await r.call('DELETE', `/v1/things/${name}`)).status).toBe(204);
  });
  return 120 + 40 + 20;
}

/**
 * Three regions, each replicating from the two others. Writes made in each region reach both
 * others, exactly once and in their origin's order, and no change comes back to its origin.
 */
async function fullMesh(engine: Engine): Promise<void> {
  const c = await startCluster(REGIONS, engine);
  try {
    const regions = REGIONS.map((n) => regionOf(c, n));
    await allTailing(regions);
    await converged(regions);
    // Every change offered to a link but not applied counts as stale: a change coming back to its
    // origin, or reaching a region twice by two paths, would. None of the writes below is
    // contested, so the counts must not move.
    const staleCounts = () =>
      regions.flatMap((r) =>
        [...running(r).replication.links.values()].map((l) => `${r.name}←${l.peer}: ${l.status().stale}`),
      );
    const staleBefore = staleCounts();
    const made = await Promise.all(regions.map(localWork));
    await converged(regions);
    const logs = new Map<string, LoggedChange[]>();
    for (const r of regions) logs.set(r.name, await changeLog((p) => r.call('GET', p)));
    const meshOf = (log: LoggedChange[], origin: string) =>
      log
        .filter((ch) => ch.origin === origin && ch.kind === 'thing' && ch.key.startsWith(`mesh-${origin}-`))
        .map((ch) => ch.id);

    for (const [i, r] of regions.entries()) {
      const log = logs.get(r.name) ?? [];
      // Each change id once in every region's log.
      expect(duplicates(log.map((ch) => ch.id)), r.name).toEqual([]);
      // Its own changes are exactly those made there: none came back from a peer.
      expect(meshOf(log, r.name), r.name).toHaveLength(made[i] ?? -1);
      // Every change of every other region arrived once, in its origin's order.
      for (const origin of REGIONS.filter((n) => n !== r.name)) {
        expect(meshOf(log, origin), `${origin} → ${r.name}`).toEqual(meshOf(logs.get(origin) ?? [], origin));
      }
    }
    expect(staleCounts()).toEqual(staleBefore);

    // Then all fight over a few shared things at the same time: they still converge.
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        regions.flatMap((r) =>
          names('shared', 4).map((name) =>
            r.call('PUT', `/v1/things/${name}`, { attributes: { by: r.name, round: `${round}` } }),
          ),
        ),
      );
    }
    await converged(regions);

    // Everything a region applied from its peers was made elsewhere: each applied change has a
    // record of another origin in its log, and the region's own records are its own writes.
    for (const r of regions) {
      await eventually(async () => {
        const log = await changeLog((p) => r.call('GET', p));
        const links = [...running(r).replication.links.values()].map((l) => l.status());
        const applied = links.reduce((n, l) => n + l.applied, 0);
        return (
          links.every((l) => l.state.type === 'tailing' && l.lastError === null && l.deadLetters === 0) &&
          applied === log.filter((ch) => ch.origin !== r.name).length
        );
      }, `${r.name}: applied changes all of other origins`);
    }
  } finally {
    await c.close();
  }
}

onEachEngine('three regions in a full mesh', (engine) => {
  it("carries each region's writes to the two others, once, and never back", async () => {
    await fullMesh(engine());
  }, 60_000);
});

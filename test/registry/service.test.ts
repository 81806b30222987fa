import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/common/index.js';
import { LIST_ALL_PAGE, RegistryService, TOKEN_CACHE_TTL_MS } from '../../src/registry/index.js';
import { PostgresStore, type RegistryStore, SqliteStore } from '../../src/registry/store/index.js';
import { postgresSkipReason, type RunningPostgres, startPostgres } from '../harness/postgres.js';

/** The registry service's guarantees, on every store engine. */
function serviceSuite(
  engine: string,
  open: () => Promise<{ store: () => RegistryStore; cleanup(): Promise<void> }>,
) {
  describe(`registry service on ${engine}`, () => {
    let fixture: Awaited<ReturnType<typeof open>>;
    let store: RegistryStore;
    let service: RegistryService;
    let now = Date.parse('2026-01-01T00:00:00Z');
    const clock: Clock = { now: () => now };

    beforeAll(async () => {
      fixture = await open();
      store = fixture.store();
      await store.init();
      service = new RegistryService({ store, region: 'us-east', clock });
      await service.init();
    });
    afterAll(async () => {
      await store?.close();
      await fixture?.cleanup();
    });

    it('writes nothing for a PUT that changes nothing, whatever the key order', async () => {
      await service.putThing('same', { attributes: { a: '1', b: '2' } });
      const seq = await store.lastSeq();
      const again = await service.putThing('same', { attributes: { b: '2', a: '1' } });
      expect(again.changed).toBe(false);
      const doc = {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
      };
      await service.putPolicy('same-policy', { policyDocument: doc });
      const seq2 = await store.lastSeq();
      const reordered = {
        Statement: [{ Resource: '*', Action: 'iot:Connect', Effect: 'Allow' }],
        Version: '2012-10-17',
      };
      const p = await service.putPolicy('same-policy', { policyDocument: reordered });
      expect(p.changed).toBe(false);
      expect(p.item.versions).toHaveLength(1);
      expect(seq2).toBe(seq + 1);
      expect(await store.lastSeq()).toBe(seq2);
    });

    it('serializes concurrent updates of one entity: versions 1..N, one change each, in order', async () => {
      const before = await store.lastSeq();
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => service.putThing('hot', { attributes: { i: String(i) } })),
      );
      const thing = await service.getThing('hot');
      expect(thing.version).toBe(40);
      const changes = await store.changes({ after: before, limit: 1000 });
      expect(changes.map((c) => c.version)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(changes[39]?.after).toMatchObject({ attributes: thing.attributes });
    });

    it('writes a forced cascade as one transaction: contiguous changes, all or nothing', async () => {
      await service.putThing('cascade', {});
      await service.putThingGroup('g1', {});
      await service.putThingGroup('g2', {});
      await service.addThingToGroup('g1', 'cascade');
      await service.addThingToGroup('g2', 'cascade');
      const before = await store.lastSeq();
      await service.deleteThing('cascade', { force: true });
      const changes = await store.changes({ after: before, limit: 100 });
      expect(changes.map((c) => `${c.kind}:${c.op}`).sort()).toEqual([
        'thing-group-member:delete',
        'thing-group-member:delete',
        'thing:delete',
      ]);
      expect(changes.map((c) => c.seq)).toEqual([before + 1, before + 2, before + 3]);
      expect(await service.listGroupThings('g1')).toEqual([]);
    });

    it("lists every thing of a group past one page of the store's reads", async () => {
      await service.putThingGroup('big', {});
      const names = Array.from({ length: LIST_ALL_PAGE + 2 }, (_, i) => `m-${String(i).padStart(5, '0')}`);
      for (const name of names) {
        await service.putThing(name, {});
        await service.addThingToGroup('big', name);
      }
      expect(await service.listGroupThings('big')).toEqual(names);
    });

    it('keeps a deleted entity as a tombstone and continues its version when it is made again', async () => {
      await service.putThing('phoenix', {});
      await service.deleteThing('phoenix');
      expect(await store.get('thing', 'phoenix')).toBeUndefined();
      expect((await store.get('thing', 'phoenix', { includeDeleted: true }))?.deleted).toBe(true);
      const reborn = await service.putThing('phoenix', {});
      expect(reborn.created).toBe(true);
      expect(reborn.item.version).toBe(3);
    });

    it('never issues a smaller HLC, even after a restart with the clock set back', async () => {
      await service.putThing('clock-1', {});
      const [last] = await store.changes({ after: (await store.lastSeq()) - 1, limit: 1 });
      now -= 3_600_000;
      const restarted = new RegistryService({ store, region: 'us-east', clock });
      await restarted.init();
      await restarted.putThing('clock-2', {});
      const [next] = await store.changes({ after: (await store.lastSeq()) - 1, limit: 1 });
      expect(last && next).toBeTruthy();
      if (!last || !next) return;
      expect(
        next.hlc.wall > last.hlc.wall ||
          (next.hlc.wall === last.hlc.wall && next.hlc.counter > last.hlc.counter),
      ).toBe(true);
    });

    it('stops accepting a token revoked by another process within the cache bound', async () => {
      const other = new RegistryService({ store, region: 'us-east', clock });
      const { token, info } = await service.createToken('shared', 'reader');
      expect(await other.verifyToken(token)).toMatchObject({ tokenId: info.tokenId, role: 'reader' });
      await service.deleteToken(info.tokenId);
      expect(await service.verifyToken(token)).toBeUndefined();
      now += TOKEN_CACHE_TTL_MS + 1;
      expect(await other.verifyToken(token)).toBeUndefined();
      expect(await other.verifyToken(`${token.slice(0, -1)}x`)).toBeUndefined();
    });

    it('refuses a write whose check fails without writing anything', async () => {
      const seq = await store.lastSeq();
      await expect(service.putThing('typed', { thingTypeName: 'missing-type' })).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_MISSING_REFERENCE',
        status: 409,
      });
      await expect(service.deleteThing('nobody')).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_NOT_FOUND',
        status: 404,
      });
      expect(await store.lastSeq()).toBe(seq);
    });
  });
}

serviceSuite('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iotdr-service-'));
  return {
    store: () => new SqliteStore({ path: join(dir, 'registry.db') }),
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const skip = postgresSkipReason();
if (skip === undefined) {
  let pg: RunningPostgres | undefined;
  serviceSuite('postgres', async () => {
    const started = await startPostgres();
    if ('skipped' in started) throw new Error(started.skipped);
    pg = started;
    return {
      store: () => new PostgresStore({ connectionString: started.url, schema: 'service_suite' }),
      async cleanup() {
        await pg?.stop();
      },
    };
  });
} else {
  console.warn(`skipping the PostgreSQL service tests: ${skip}`);
}

/**
 * The RegistryStore contract, run against every engine (store.sqlite.test.ts,
 * store.postgres.test.ts). It checks what a user of the registry would notice: what is read back,
 * in which order, what the change log says, and what a failed or concurrent transaction leaves.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeRecord, EntityRecord, Mutation, RegistryStore } from '../../src/registry/store/index.js';

export interface StoreFixture {
  /** An initialised store on a fresh, empty database. */
  store: RegistryStore;
  /** A new, not yet initialised store on the same database (file or schema), as after a restart. */
  reopen(): RegistryStore;
  /** Closes the fixture's store and deletes its database. */
  cleanup(): Promise<void>;
}

const T0 = 1_700_000_000_000;

let tick = 0;

/** An upsert of a thing with realistic values; `over` replaces any field. */
function mutation(key: string, over: Partial<Mutation> = {}): Mutation {
  tick += 1;
  return {
    changeId: randomUUID(),
    kind: 'thing',
    key,
    op: 'upsert',
    ref: null,
    doc: { thingName: key, attributes: { n: tick } },
    version: 1,
    hlc: { wall: T0 + tick, counter: 0 },
    origin: 'us-east',
    at: T0 + tick,
    ...over,
  };
}

/** The change record a committed mutation must produce. */
function expectedChange(m: Mutation, seq: number): ChangeRecord {
  return {
    seq,
    id: m.changeId,
    kind: m.kind,
    key: m.key,
    op: m.op,
    ref: m.ref,
    after: m.op === 'delete' ? null : m.doc,
    version: m.version,
    hlc: m.hlc,
    origin: m.origin,
    committedAt: m.at,
  };
}

function expectedEntity(m: Mutation): EntityRecord {
  return {
    kind: m.kind,
    key: m.key,
    ref: m.ref,
    doc: m.op === 'delete' ? null : m.doc,
    version: m.version,
    hlc: m.hlc,
    origin: m.origin,
    deleted: m.op === 'delete',
    updatedAt: m.at,
  };
}

function commit(store: RegistryStore, ...mutations: Mutation[]): Promise<ChangeRecord[]> {
  return store.transaction(async (tx) => {
    const out: ChangeRecord[] = [];
    for (const m of mutations) out.push(await tx.apply(m));
    return out;
  });
}

async function allChanges(store: RegistryStore): Promise<ChangeRecord[]> {
  return store.changes({ after: 0, limit: 100_000 });
}

async function keys(store: RegistryStore, kind: string, options: Parameters<RegistryStore['list']>[1]) {
  return (await store.list(kind, options)).map((e) => e.key);
}

export function storeSuite(name: string, make: () => Promise<StoreFixture>): void {
  describe(`registry store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: RegistryStore;

    beforeEach(async () => {
      fixture = await make();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    describe('entities', () => {
      it('reads back what an upsert wrote, and the next version replaces it', async () => {
        const doc = {
          thingName: 'sensor-1',
          attributes: { floor: 3, tags: ['a', 'b'], ok: true, none: null, text: 'Grüße, 東京' },
        };
        const v1 = mutation('sensor-1', { ref: 'type/temperature', doc });
        await commit(store, v1);
        expect(await store.get('thing', 'sensor-1')).toEqual(expectedEntity(v1));

        const v2 = mutation('sensor-1', {
          version: 2,
          doc: { thingName: 'sensor-1', attributes: {} },
          origin: 'us-west',
        });
        await commit(store, v2);
        expect(await store.get('thing', 'sensor-1')).toEqual(expectedEntity(v2));

        expect(await store.get('thing', 'sensor-2')).toBeUndefined();
        expect(await store.get('policy', 'sensor-1')).toBeUndefined();
      });

      it('keeps a tombstone on delete: hidden from get, list and count, visible with includeDeleted', async () => {
        await commit(store, mutation('a'), mutation('b'));
        // A delete's doc is ignored: the tombstone and the change carry null.
        const del = mutation('a', { op: 'delete', version: 2, doc: { ignored: true } });
        await commit(store, del);

        expect(await store.get('thing', 'a')).toBeUndefined();
        expect(await store.get('thing', 'a', { includeDeleted: true })).toEqual(expectedEntity(del));
        expect(await keys(store, 'thing', { limit: 10 })).toEqual(['b']);
        expect(await store.count('thing')).toBe(1);

        // Writing the key again brings it back.
        const again = mutation('a', { version: 3 });
        await commit(store, again);
        expect(await store.get('thing', 'a')).toEqual(expectedEntity(again));
        expect(await store.count('thing')).toBe(2);
      });

      it('lists in byte order of the key, the same on every engine', async () => {
        const names = ['b', 'B', 'a', 'A', 'a-1', 'a_1', 'a.1', 'a1', 'aa', 'Z', '0', '_x', '~x', 'a~', 'a%'];
        await commit(store, ...names.map((n) => mutation(n)));
        const sorted = [...names].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        expect(sorted.slice(0, 4)).toEqual(['0', 'A', 'B', 'Z']);
        expect(await keys(store, 'thing', { limit: 100 })).toEqual(sorted);
      });

      it('pages with `after` (exclusive) and `limit` through every live entity exactly once', async () => {
        const names = Array.from({ length: 23 }, (_, i) => `dev-${String(i).padStart(3, '0')}`);
        await commit(store, ...[...names].reverse().map((n) => mutation(n)));
        await commit(store, mutation('dev-005', { op: 'delete', version: 2 }));
        const live = names.filter((n) => n !== 'dev-005');

        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await keys(store, 'thing', { limit: 5, ...(after === undefined ? {} : { after }) });
          expect(page.length).toBeLessThanOrEqual(5);
          if (page.length === 0) break;
          seen.push(...page);
          after = page.at(-1);
        }
        expect(seen).toEqual(live);
        expect(await keys(store, 'thing', { limit: 2, after: 'dev-004' })).toEqual(['dev-006', 'dev-007']);
        expect(await keys(store, 'thing', { limit: 3, after: 'zzz' })).toEqual([]);
      });

      it('filters by prefix as a literal string (no wildcards) and by ref, alone and together', async () => {
        await commit(
          store,
          mutation('a_1', { ref: 'cert-1' }),
          mutation('ab1', { ref: 'cert-1' }),
          mutation('a%2', { ref: 'cert-2' }),
          mutation('a%3'),
          mutation('abc', { ref: 'cert-2' }),
          mutation('b', { ref: 'cert-1' }),
          mutation('a', { ref: 'cert-1' }),
          mutation('a_1', { kind: 'policy', ref: 'cert-1' }),
        );
        await commit(store, mutation('ab1', { op: 'delete', version: 2, ref: 'cert-1' }));

        expect(await keys(store, 'thing', { limit: 100, prefix: 'a_' })).toEqual(['a_1']);
        expect(await keys(store, 'thing', { limit: 100, prefix: 'a%' })).toEqual(['a%2', 'a%3']);
        expect(await keys(store, 'thing', { limit: 100, prefix: 'ab' })).toEqual(['abc']);
        expect(await keys(store, 'thing', { limit: 100, prefix: 'a' })).toEqual([
          'a',
          'a%2',
          'a%3',
          'a_1',
          'abc',
        ]);
        expect(await keys(store, 'thing', { limit: 100, prefix: 'c' })).toEqual([]);
        expect(await keys(store, 'thing', { limit: 100, ref: 'cert-1' })).toEqual(['a', 'a_1', 'b']);
        expect(await keys(store, 'thing', { limit: 100, ref: 'cert-1', prefix: 'a' })).toEqual(['a', 'a_1']);
        expect(await keys(store, 'thing', { limit: 1, ref: 'cert-1', after: 'a' })).toEqual(['a_1']);
        expect(await keys(store, 'thing', { limit: 100, ref: 'cert-9' })).toEqual([]);
        expect(await keys(store, 'policy', { limit: 100 })).toEqual(['a_1']);

        expect(await store.count('thing')).toBe(6);
        expect(await store.count('thing', { prefix: 'a%' })).toBe(2);
        expect(await store.count('thing', { ref: 'cert-1' })).toBe(3);
        expect(await store.count('thing', { prefix: 'a', ref: 'cert-2' })).toBe(2);
        expect(await store.count('policy')).toBe(1);
        expect(await store.count('certificate')).toBe(0);
      });
    });

    describe('change log', () => {
      it('is empty on a new store', async () => {
        expect(await allChanges(store)).toEqual([]);
        expect(await store.lastSeq()).toBe(0);
        expect(await store.maxHlc()).toBeUndefined();
      });

      it('records one change per apply, numbered from 1 without gaps, with the after-image', async () => {
        const m1 = mutation('a', { ref: 'cert-1' });
        const m2 = mutation('b', { origin: 'us-west', hlc: { wall: T0 + 10_000, counter: 4 } });
        const m3 = mutation('a', { op: 'delete', version: 2, ref: 'cert-1' });
        const m4 = mutation('p', { kind: 'policy', doc: { Version: '2012-10-17', Statement: [] } });

        const returned = [
          ...(await commit(store, m1)),
          ...(await commit(store, m2, m3)),
          ...(await commit(store, m4)),
        ];
        const expected = [
          expectedChange(m1, 1),
          expectedChange(m2, 2),
          expectedChange(m3, 3),
          expectedChange(m4, 4),
        ];
        expect(returned).toEqual(expected);
        expect(await allChanges(store)).toEqual(expected);

        expect(await store.changes({ after: 1, limit: 2 })).toEqual(expected.slice(1, 3));
        expect(await store.changes({ after: 4, limit: 10 })).toEqual([]);
        expect(await store.changes({ after: 0, limit: 10, origin: 'us-west' })).toEqual([expected[1]]);
        expect(await store.changes({ after: 0, limit: 2, origin: 'us-east' })).toEqual([
          expected[0],
          expected[2],
        ]);
        expect(await store.changes({ after: 3, limit: 10, origin: 'us-east' })).toEqual([expected[3]]);
        expect(await store.changes({ after: 0, limit: 10, origin: 'eu-central' })).toEqual([]);
        expect(await store.lastSeq()).toBe(4);
      });

      it('reports the highest HLC of the log, not the last one written', async () => {
        const wall = T0 + 123_456;
        await commit(store, mutation('a', { hlc: { wall, counter: 2 } }));
        await commit(store, mutation('b', { hlc: { wall: wall + 2, counter: 3 } }));
        await commit(store, mutation('c', { hlc: { wall: wall + 2, counter: 0 } }));
        await commit(store, mutation('d', { hlc: { wall: wall + 1, counter: 9 } }));
        expect(await store.maxHlc()).toEqual({ wall: wall + 2, counter: 3 });
        expect(await store.lastSeq()).toBe(4);
      });

      it('rejects a duplicate change id and writes nothing for it', async () => {
        const first = mutation('a');
        await commit(store, first);

        await expect(commit(store, mutation('b', { changeId: first.changeId }))).rejects.toThrow();
        expect(await store.get('thing', 'b', { includeDeleted: true })).toBeUndefined();
        expect(await store.lastSeq()).toBe(1);

        // Even when the caller swallows the error, no entity is left without its change record.
        // (The transaction may then commit nothing or fail as a whole, depending on the engine.)
        await store
          .transaction(async (tx) => {
            await tx.apply(mutation('c', { changeId: first.changeId })).catch(() => undefined);
          })
          .catch(() => undefined);
        expect(await store.get('thing', 'c', { includeDeleted: true })).toBeUndefined();

        // A duplicate among concurrent transactions fails alone.
        const ok1 = mutation('d');
        const ok2 = mutation('e');
        const results = await Promise.allSettled([
          commit(store, ok1),
          commit(store, mutation('f', { changeId: first.changeId })),
          commit(store, ok2),
        ]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect(await store.get('thing', 'f', { includeDeleted: true })).toBeUndefined();
        expect(await allChanges(store)).toEqual([
          expectedChange(first, 1),
          expectedChange(ok1, 2),
          expectedChange(ok2, 3),
        ]);
      });
    });

    describe('transactions', () => {
      it('keeps nothing of a transaction that throws, and the next seq follows the last committed one', async () => {
        const before = mutation('kept');
        await commit(store, before);
        const boom = new Error('boom');

        await expect(
          store.transaction(async (tx) => {
            await tx.apply(mutation('x'));
            await tx.apply(mutation('kept', { version: 2, doc: { changed: true } }));
            throw boom;
          }),
        ).rejects.toBe(boom);

        expect(await store.get('thing', 'x', { includeDeleted: true })).toBeUndefined();
        expect(await store.get('thing', 'kept')).toEqual(expectedEntity(before));
        expect(await store.lastSeq()).toBe(1);
        expect(await allChanges(store)).toEqual([expectedChange(before, 1)]);

        const after = mutation('y');
        expect(await commit(store, after)).toEqual([expectedChange(after, 2)]);
        expect((await allChanges(store)).map((c) => c.seq)).toEqual([1, 2]);
      });

      it('sees its own writes inside, and nothing is visible outside before commit', async () => {
        const m = mutation('inside', { ref: 'cert-1' });
        const value = await store.transaction(async (tx) => {
          const change = await tx.apply(m);
          expect(change.seq).toBe(1);
          expect(await tx.get('thing', 'inside')).toEqual(expectedEntity(m));
          expect((await tx.list('thing', { limit: 10 })).map((e) => e.key)).toEqual(['inside']);
          expect(await tx.count('thing', { ref: 'cert-1' })).toBe(1);

          expect(await store.get('thing', 'inside')).toBeUndefined();
          expect(await store.list('thing', { limit: 10 })).toEqual([]);
          expect(await store.count('thing')).toBe(0);
          expect(await allChanges(store)).toEqual([]);
          expect(await store.lastSeq()).toBe(0);
          expect(await store.maxHlc()).toBeUndefined();
          return 'done';
        });
        expect(value).toBe('done');
        expect(await store.get('thing', 'inside')).toEqual(expectedEntity(m));
        expect(await allChanges(store)).toEqual([expectedChange(m, 1)]);
      });

      it('runs 200 concurrent transactions: failures leave nothing, seqs are gap-free in commit order', async () => {
        const n = 200;
        const fails = (i: number): boolean => i % 7 === 3;
        const committedSeqs: number[] = [];
        const mutationsOf = (i: number): Mutation[] => {
          const key = `dev-${String(i).padStart(3, '0')}`;
          // Every third transaction writes two entities.
          return i % 3 === 0
            ? [mutation(key), mutation(`${key}-shadow`, { kind: 'shadow' })]
            : [mutation(key)];
        };
        const planned = Array.from({ length: n }, (_, i) => mutationsOf(i));

        const results = await Promise.allSettled(
          planned.map((ms, i) =>
            store
              .transaction(async (tx) => {
                const seqs: number[] = [];
                for (const m of ms) seqs.push((await tx.apply(m)).seq);
                if (fails(i)) throw new Error(`transaction ${i} fails`);
                return seqs;
              })
              .then((seqs) => {
                // Resolution order is commit order.
                committedSeqs.push(...seqs);
                return seqs;
              }),
          ),
        );

        const expectedChanges: Mutation[] = [];
        for (const [i, r] of results.entries()) {
          const ms = planned[i] ?? [];
          if (fails(i)) {
            expect(r).toEqual({ status: 'rejected', reason: new Error(`transaction ${i} fails`) });
            for (const m of ms)
              expect(await store.get(m.kind, m.key, { includeDeleted: true })).toBeUndefined();
          } else {
            expect(r.status).toBe('fulfilled');
            for (const m of ms) expect(await store.get(m.kind, m.key)).toEqual(expectedEntity(m));
            expectedChanges.push(...ms);
          }
        }

        const total = expectedChanges.length;
        const log = await allChanges(store);
        expect(log.map((c) => c.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
        expect(committedSeqs).toEqual(log.map((c) => c.seq));
        const byId = new Map(expectedChanges.map((m) => [m.changeId, m]));
        for (const c of log) {
          const m = byId.get(c.id);
          expect(m).toBeDefined();
          if (m) expect(c).toEqual(expectedChange(m, c.seq));
        }
        expect(await store.lastSeq()).toBe(total);
        expect(await store.count('thing')).toBe(planned.filter((_, i) => !fails(i)).length);
      });
    });

    describe('lifecycle', () => {
      it('keeps entities and the change log across close and reopen, and continues the seqs', async () => {
        const m1 = mutation('a', { ref: 'cert-1', hlc: { wall: T0 + 50_000, counter: 7 } });
        const m2 = mutation('b');
        const m3 = mutation('b', { op: 'delete', version: 2 });
        await commit(store, m1, m2);
        await commit(store, m3);
        await store.close();

        const reopened = fixture.reopen();
        try {
          await reopened.init();
          expect(await reopened.get('thing', 'a')).toEqual(expectedEntity(m1));
          expect(await reopened.get('thing', 'b', { includeDeleted: true })).toEqual(expectedEntity(m3));
          expect(await keys(reopened, 'thing', { limit: 10, ref: 'cert-1' })).toEqual(['a']);
          expect(await allChanges(reopened)).toEqual([
            expectedChange(m1, 1),
            expectedChange(m2, 2),
            expectedChange(m3, 3),
          ]);
          expect(await reopened.lastSeq()).toBe(3);
          expect(await reopened.maxHlc()).toEqual(m1.hlc);
          const m4 = mutation('c');
          expect(await commit(reopened, m4)).toEqual([expectedChange(m4, 4)]);
        } finally {
          await reopened.close();
        }
      });

      it('treats init twice, on the same instance or a second one, as harmless', async () => {
        const m = mutation('a');
        await commit(store, m);
        await store.init();
        expect(await store.get('thing', 'a')).toEqual(expectedEntity(m));

        const second = fixture.reopen();
        try {
          await Promise.all([second.init(), second.init()]);
          await second.init();
          expect(await second.get('thing', 'a')).toEqual(expectedEntity(m));
          expect(await second.lastSeq()).toBe(1);
        } finally {
          await second.close();
        }
        expect(await commit(store, mutation('b'))).toMatchObject([{ seq: 2 }]);
      });

      it('refuses work before init and after close with a typed error', async () => {
        const fresh = fixture.reopen();
        await expect(fresh.get('thing', 'a')).rejects.toMatchObject({ code: 'IOTDR_STORE_NOT_INITIALIZED' });
        await fresh.close();

        await store.close();
        await store.close();
        await expect(store.get('thing', 'a')).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
        await expect(store.list('thing', { limit: 1 })).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
        await expect(store.lastSeq()).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
        await expect(commit(store, mutation('a'))).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
      });
    });
  });
}

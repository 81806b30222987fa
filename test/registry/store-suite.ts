/**
 * The RegistryStore contract, run against every engine (store.sqlite.test.ts,
 * store.postgres.test.ts). It checks what a user of the registry would notice: what is read back,
 * in which order, what the change log says, and what a failed or concurrent transaction leaves.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  ChangeRecord,
  EntityRecord,
  Mutation,
  RegistryStore,
  ScanOptions,
} from '../../src/registry/store/index.js';

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
    after: m.op === 'delete' ? (m.tombstone ?? null) : m.doc,
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
    doc: m.op === 'delete' ? (m.tombstone ?? null) : m.doc,
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

/** Byte order of ASCII strings: the order both engines keep kinds and keys in. */
function byteOrder(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Pages through `scan` with keyset `after`, checking that no page exceeds its limit. */
async function scanAll(
  store: RegistryStore,
  options: Omit<ScanOptions, 'after' | 'limit'>,
  pageSize: number,
): Promise<EntityRecord[]> {
  const seen: EntityRecord[] = [];
  let after: ScanOptions['after'];
  for (;;) {
    const page = await store.scan({ ...options, limit: pageSize, ...(after === undefined ? {} : { after }) });
    expect(page.length).toBeLessThanOrEqual(pageSize);
    const last = page.at(-1);
    if (!last) return seen;
    seen.push(...page);
    after = { kind: last.kind, key: last.key };
  }
}

async function localKeys(store: RegistryStore, prefix: string, options: { after?: string; limit: number }) {
  return (await store.listLocal(prefix, options)).map((r) => r.key);
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

    describe('scan', () => {
      it('pages through the entities of every kind in (kind, key) byte order, each exactly once', async () => {
        const written = [
          mutation('z'),
          mutation('sensor-2'),
          mutation('Sensor-1'),
          mutation('sensor-10'),
          mutation('a', { kind: 'thingGroup' }),
          mutation('floor-3', { kind: 'thingGroup' }),
          mutation('deny', { kind: 'policy' }),
          mutation('allow-all', { kind: 'policy' }),
          mutation('Allow', { kind: 'policy' }),
          mutation('ff00', { kind: 'certificate' }),
          mutation('0a1b', { kind: 'certificate' }),
          mutation('sensor-2|0a1b', { kind: 'attachment', ref: '0a1b' }),
        ];
        await commit(store, ...written.slice(0, 6));
        await commit(store, ...written.slice(6));
        await commit(store, mutation('deny', { kind: 'policy', op: 'delete', version: 2 }));

        const live = written
          .filter((m) => m.key !== 'deny')
          .sort((x, y) => byteOrder(x.kind, y.kind) || byteOrder(x.key, y.key))
          .map(expectedEntity);
        // (kind, key) order, not the order of kind + key: 'thing' comes before 'thingGroup' whatever the keys.
        expect(live.map((e) => `${e.kind}/${e.key}`)).toEqual([
          'attachment/sensor-2|0a1b',
          'certificate/0a1b',
          'certificate/ff00',
          'policy/Allow',
          'policy/allow-all',
          'thing/Sensor-1',
          'thing/sensor-10',
          'thing/sensor-2',
          'thing/z',
          'thingGroup/a',
          'thingGroup/floor-3',
        ]);
        expect(await store.scan({ limit: 100 })).toEqual(live);
        for (const pageSize of [1, 3, 4, 11]) expect(await scanAll(store, {}, pageSize)).toEqual(live);
        expect(await store.scan({ limit: 3 })).toEqual(live.slice(0, 3));

        // `after` is exclusive and need not name an existing entity, nor an existing kind.
        expect(await store.scan({ limit: 2, after: { kind: 'thing', key: 'sensor-10' } })).toEqual(
          live.slice(7, 9),
        );
        expect(await store.scan({ limit: 1, after: { kind: 'thing', key: 'z' } })).toEqual(live.slice(9, 10));
        expect(await store.scan({ limit: 1, after: { kind: 'thing', key: 'zzz' } })).toEqual(
          live.slice(9, 10),
        );
        expect(await store.scan({ limit: 1, after: { kind: 'policy', key: 'deny' } })).toEqual(
          live.slice(5, 6),
        );
        expect(await store.scan({ limit: 1, after: { kind: 's', key: '' } })).toEqual(live.slice(5, 6));
        expect(await store.scan({ limit: 10, after: { kind: 'thingGroup', key: 'floor-3' } })).toEqual([]);
      });

      it('filters by the origin of the last write and shows tombstones only with includeDeleted', async () => {
        const a = mutation('a', { origin: 'us-east' });
        const d = mutation('d', { origin: 'us-west' });
        const p = mutation('p', { kind: 'policy', origin: 'us-west' });
        await commit(
          store,
          a,
          mutation('b', { origin: 'us-west' }),
          mutation('c', { origin: 'us-east' }),
          d,
          p,
          mutation('q', { kind: 'policy', origin: 'us-east' }),
        );
        // b moves to us-east; c is deleted from us-west; q is deleted where it was made.
        const b = mutation('b', { origin: 'us-east', version: 2 });
        const c = mutation('c', { origin: 'us-west', op: 'delete', version: 2 });
        const q = mutation('q', { kind: 'policy', origin: 'us-east', op: 'delete', version: 2 });
        await commit(store, b, c, q);

        expect(await store.scan({ limit: 100 })).toEqual([p, a, b, d].map(expectedEntity));
        expect(await store.scan({ limit: 100, origin: 'us-east' })).toEqual([a, b].map(expectedEntity));
        expect(await store.scan({ limit: 100, origin: 'us-west' })).toEqual([p, d].map(expectedEntity));
        expect(await store.scan({ limit: 100, origin: 'eu-central' })).toEqual([]);

        const all = [p, q, a, b, c, d].map(expectedEntity);
        expect(await store.scan({ limit: 100, includeDeleted: true })).toEqual(all);
        expect(await scanAll(store, { includeDeleted: true }, 1)).toEqual(all);
        expect(await scanAll(store, { includeDeleted: true, origin: 'us-west' }, 2)).toEqual(
          [p, c, d].map(expectedEntity),
        );
        expect(await scanAll(store, { includeDeleted: true, origin: 'us-east' }, 1)).toEqual(
          [q, a, b].map(expectedEntity),
        );
        expect(
          await store.scan({ limit: 2, includeDeleted: true, after: { kind: 'thing', key: 'b' } }),
        ).toEqual([c, d].map(expectedEntity));
        expect(await store.scan({ limit: 2, after: { kind: 'thing', key: 'b' } })).toEqual([
          expectedEntity(d),
        ]);

        // A transaction's scan sees its own writes; others see them once committed.
        const e = mutation('e', { origin: 'us-west' });
        await store.transaction(async (tx) => {
          await tx.apply(e);
          expect(await tx.scan({ limit: 100, origin: 'us-west' })).toEqual([p, d, e].map(expectedEntity));
          expect(await store.scan({ limit: 100, origin: 'us-west' })).toEqual([p, d].map(expectedEntity));
        });
        expect(await store.scan({ limit: 100, origin: 'us-west' })).toEqual([p, d, e].map(expectedEntity));
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

    describe('change log pruning', () => {
      it('reports firstSeq 0 for an empty log and 1 once written; pruning an empty log is harmless', async () => {
        expect(await store.firstSeq()).toBe(0);
        expect(await store.pruneChanges(Number.MAX_SAFE_INTEGER)).toBe(0);
        expect(await store.firstSeq()).toBe(0);
        expect(await store.lastSeq()).toBe(0);

        await commit(store, mutation('a'), mutation('b'));
        expect(await store.firstSeq()).toBe(1);
        expect(await store.lastSeq()).toBe(2);
      });

      it('removes the records committed before the cutoff, never the newest, and seqs go on without a gap', async () => {
        const base = T0 + 1_000_000;
        const m1 = mutation('a', { at: base + 100 });
        const m2 = mutation('b', { at: base + 200, origin: 'us-west' });
        const m3 = mutation('c', { at: base + 300 });
        const m4 = mutation('a', { at: base + 300, op: 'delete', version: 2 });
        const m5 = mutation('d', { at: base + 400, origin: 'us-west' });
        await commit(store, m1);
        await commit(store, m2);
        await commit(store, m3, m4);
        await commit(store, m5);

        // The cutoff is exclusive: what was committed at `before` stays.
        expect(await store.pruneChanges(base + 300)).toBe(2);
        expect(await store.firstSeq()).toBe(3);
        expect(await store.lastSeq()).toBe(5);
        const remaining = [expectedChange(m3, 3), expectedChange(m4, 4), expectedChange(m5, 5)];
        expect(await allChanges(store)).toEqual(remaining);
        // A reader behind the pruned part gets what remains; firstSeq tells it that it missed some.
        expect(await store.changes({ after: 1, limit: 10 })).toEqual(remaining);
        expect(await store.changes({ after: 0, limit: 10, origin: 'us-west' })).toEqual([
          expectedChange(m5, 5),
        ]);
        expect(await store.pruneChanges(base + 300)).toBe(0);

        // Pruning leaves the entities alone, tombstones included.
        expect(await store.get('thing', 'b')).toEqual(expectedEntity(m2));
        expect(await store.get('thing', 'a', { includeDeleted: true })).toEqual(expectedEntity(m4));

        // A cutoff after everything still keeps the newest record, and with it the HLC floor.
        expect(await store.pruneChanges(base + 10_000)).toBe(2);
        expect(await allChanges(store)).toEqual([expectedChange(m5, 5)]);
        expect(await store.firstSeq()).toBe(5);
        expect(await store.lastSeq()).toBe(5);
        expect(await store.maxHlc()).toEqual(m5.hlc);
        expect(await store.pruneChanges(Number.MAX_SAFE_INTEGER)).toBe(0);

        const m6 = mutation('e', { at: base + 500 });
        expect(await commit(store, m6)).toEqual([expectedChange(m6, 6)]);
        expect(await allChanges(store)).toEqual([expectedChange(m5, 5), expectedChange(m6, 6)]);
        expect(await store.firstSeq()).toBe(5);
        expect(await store.lastSeq()).toBe(6);
      });

      it('continues the seqs of a pruned log after close and reopen', async () => {
        const ms = [mutation('a'), mutation('b'), mutation('c')];
        for (const m of ms) await commit(store, m);
        expect(await store.pruneChanges(Number.MAX_SAFE_INTEGER)).toBe(2);
        await store.close();

        const reopened = fixture.reopen();
        try {
          await reopened.init();
          expect(await reopened.firstSeq()).toBe(3);
          expect(await reopened.lastSeq()).toBe(3);
          const next = mutation('d');
          expect(await commit(reopened, next)).toEqual([expectedChange(next, 4)]);
          expect((await allChanges(reopened)).map((c) => c.seq)).toEqual([3, 4]);
        } finally {
          await reopened.close();
        }
      });
    });

    describe('tombstone purge', () => {
      it('removes only tombstones last written before the cutoff, never live entities', async () => {
        const base = T0 + 2_000_000;
        const oldLive = mutation('old-live', { at: base + 100 });
        await commit(
          store,
          oldLive,
          mutation('b', { at: base + 100 }),
          mutation('c', { at: base + 100 }),
          mutation('d', { at: base + 100 }),
          mutation('p', { kind: 'policy', at: base + 100 }),
          mutation('revived', { at: base + 100 }),
        );
        const delB = mutation('b', { op: 'delete', version: 2, at: base + 200 });
        const delP = mutation('p', { kind: 'policy', op: 'delete', version: 2, at: base + 250 });
        const delC = mutation('c', { op: 'delete', version: 2, at: base + 300 });
        const delD = mutation('d', { op: 'delete', version: 2, at: base + 400 });
        await commit(
          store,
          delB,
          delP,
          delC,
          delD,
          mutation('revived', { op: 'delete', version: 2, at: base + 150 }),
        );
        // Deleted long ago but written again since: live, so never purged however old.
        const revived = mutation('revived', { version: 3, at: base + 160 });
        await commit(store, revived);
        const log = await allChanges(store);

        // The cutoff is exclusive: a tombstone written at `before` stays.
        expect(await store.purgeTombstones(base + 300)).toBe(2);
        expect(await store.get('thing', 'b', { includeDeleted: true })).toBeUndefined();
        expect(await store.get('policy', 'p', { includeDeleted: true })).toBeUndefined();
        expect(await store.scan({ limit: 100, includeDeleted: true })).toEqual(
          [delC, delD, oldLive, revived].map(expectedEntity),
        );
        expect(await keys(store, 'thing', { limit: 100 })).toEqual(['old-live', 'revived']);
        // The deletes stay in the change log for the regions that have not seen them yet.
        expect(await allChanges(store)).toEqual(log);
        expect(await store.purgeTombstones(base + 300)).toBe(0);

        expect(await store.purgeTombstones(base + 10_000)).toBe(2);
        expect(await store.scan({ limit: 100, includeDeleted: true })).toEqual(
          [oldLive, revived].map(expectedEntity),
        );
        expect(await store.count('thing')).toBe(2);
      });

      it('keeps what a tombstone remembers, and keeps the tombstone until its retainUntil has passed', async () => {
        const base = T0 + 5_000_000;
        await commit(store, ...['kept', 'plain', 'odd'].map((key) => mutation(key, { at: base })));
        const kept = mutation('kept', {
          op: 'delete',
          version: 2,
          at: base + 1,
          tombstone: { status: 'REVOKED', retainUntil: base + 1000 },
        });
        const plain = mutation('plain', { op: 'delete', version: 2, at: base + 1 });
        // A retainUntil that is not a number holds nothing back.
        const odd = mutation('odd', {
          op: 'delete',
          version: 2,
          at: base + 1,
          tombstone: { retainUntil: 'ever' },
        });
        const written = await commit(store, kept, plain, odd);
        expect(written).toEqual(
          [4, 5, 6].map((seq, i) => expectedChange([kept, plain, odd][i] as Mutation, seq)),
        );
        expect(written[0]?.after).toEqual({ status: 'REVOKED', retainUntil: base + 1000 });
        expect(await store.get('thing', 'kept')).toBeUndefined();
        expect(await store.get('thing', 'kept', { includeDeleted: true })).toEqual(expectedEntity(kept));

        expect(await store.purgeTombstones(base + 500)).toBe(2);
        expect(await store.scan({ limit: 100, includeDeleted: true })).toEqual([expectedEntity(kept)]);
        // Kept while retainUntil is not before the cutoff, purged once it is.
        expect(await store.purgeTombstones(base + 1000)).toBe(0);
        expect(await store.purgeTombstones(base + 1001)).toBe(1);
        expect(await store.get('thing', 'kept', { includeDeleted: true })).toBeUndefined();
      });

      it('purges beside a transaction that writes tombstoned keys again, failing neither', async () => {
        const base = T0 + 4_000_000;
        await commit(store, mutation('x', { at: base }), mutation('y', { at: base }));
        await commit(
          store,
          mutation('x', { op: 'delete', version: 2, at: base + 1 }),
          mutation('y', { op: 'delete', version: 2, at: base + 1 }),
        );
        let release = (): void => {};
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        let holding = (): void => {};
        const held = new Promise<void>((resolve) => {
          holding = resolve;
        });
        const x = mutation('x', { version: 3, at: base + 10 });
        const y = mutation('y', { version: 3, at: base + 10 });
        const writing = store.transaction(async (tx) => {
          await tx.apply(y);
          holding();
          await gate;
          await tx.apply(x);
        });
        await held;
        const purging = store.purgeTombstones(base + 5);
        // Give a purge that runs beside the writer (PostgreSQL) time to lock x and wait for y; the
        // transaction then writes x. A correct store passes however the two interleave.
        await new Promise((resolve) => setTimeout(resolve, 100));
        release();
        const outcomes = await Promise.allSettled([writing, purging]);
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled']);
        expect(await store.get('thing', 'x')).toEqual(expectedEntity(x));
        expect(await store.get('thing', 'y')).toEqual(expectedEntity(y));
      });

      it('lets a purged key be written again', async () => {
        const base = T0 + 3_000_000;
        await commit(store, mutation('sensor-1', { at: base }));
        await commit(store, mutation('sensor-1', { op: 'delete', version: 2, at: base + 1 }));
        expect(await store.purgeTombstones(base + 2)).toBe(1);
        expect(await store.get('thing', 'sensor-1', { includeDeleted: true })).toBeUndefined();

        const again = mutation('sensor-1', { at: base + 3, ref: 'cert-1' });
        expect(await commit(store, again)).toEqual([expectedChange(again, 3)]);
        expect(await store.get('thing', 'sensor-1')).toEqual(expectedEntity(again));
        expect(await keys(store, 'thing', { limit: 10, ref: 'cert-1' })).toEqual(['sensor-1']);

        // Its next tombstone is kept until it is old enough in turn.
        const del = mutation('sensor-1', { op: 'delete', version: 2, at: base + 4 });
        await commit(store, del);
        expect(await store.purgeTombstones(base + 4)).toBe(0);
        expect(await store.get('thing', 'sensor-1', { includeDeleted: true })).toEqual(expectedEntity(del));
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

    describe('local state', () => {
      it('reads back, replaces and removes values, and lists them by literal prefix in key order', async () => {
        const at = T0 + 500;
        const west = { region: 'us-west', seq: 42, hlc: { wall: T0, counter: 3 } };
        const central = { region: 'eu-central', seq: 7 };
        const letter = {
          changeId: randomUUID(),
          error: 'Grüße, 東京',
          attempts: [1, 2],
          ok: false,
          none: null,
        };
        await store.transaction(async (tx) => {
          await tx.putLocal('cursor/us-west', west, at);
          await tx.putLocal('cursor/eu-central', central, at + 1);
          await tx.putLocal('cursor', { n: 1 }, at + 2);
          await tx.putLocal('cursor.', { n: 2 }, at + 2);
          await tx.putLocal('cursor0', { n: 3 }, at + 2);
          await tx.putLocal('dlq/%1', letter, at + 3);
          await tx.putLocal('dlq/_2', { n: 4 }, at + 3);
          await tx.putLocal('dlq/a', { n: 5 }, at + 3);
          await tx.putLocal('Zone', { n: 6 }, at + 3);
        });

        expect(await store.getLocal('cursor/us-west')).toEqual(west);
        expect(await store.getLocal('dlq/%1')).toEqual(letter);
        expect(await store.getLocal('cursor/ap-south')).toBeUndefined();
        expect(await store.listLocal('cursor/', { limit: 10 })).toEqual([
          { key: 'cursor/eu-central', value: central, updatedAt: at + 1 },
          { key: 'cursor/us-west', value: west, updatedAt: at },
        ]);
        expect(await localKeys(store, 'cursor', { limit: 10 })).toEqual([
          'cursor',
          'cursor.',
          'cursor/eu-central',
          'cursor/us-west',
          'cursor0',
        ]);
        // '%' and '_' are plain characters, not wildcards.
        expect(await localKeys(store, 'dlq/%', { limit: 10 })).toEqual(['dlq/%1']);
        expect(await localKeys(store, 'dlq/_', { limit: 10 })).toEqual(['dlq/_2']);
        expect(await localKeys(store, 'replication/', { limit: 10 })).toEqual([]);
        // Byte order, as for entity keys: upper case first.
        expect(await localKeys(store, '', { limit: 100 })).toEqual([
          'Zone',
          'cursor',
          'cursor.',
          'cursor/eu-central',
          'cursor/us-west',
          'cursor0',
          'dlq/%1',
          'dlq/_2',
          'dlq/a',
        ]);

        // `after` is exclusive and `limit` caps the page.
        expect(await localKeys(store, 'cursor', { limit: 2 })).toEqual(['cursor', 'cursor.']);
        expect(await localKeys(store, 'cursor', { limit: 2, after: 'cursor.' })).toEqual([
          'cursor/eu-central',
          'cursor/us-west',
        ]);
        expect(await localKeys(store, 'cursor', { limit: 10, after: 'cursor/f' })).toEqual([
          'cursor/us-west',
          'cursor0',
        ]);
        expect(await localKeys(store, 'cursor', { limit: 10, after: 'cursor0' })).toEqual([]);
        expect(await localKeys(store, 'dlq/', { limit: 10, after: 'a' })).toEqual([
          'dlq/%1',
          'dlq/_2',
          'dlq/a',
        ]);

        // A put replaces the whole value; null removes it, and removing what is not there is harmless.
        const moved = { region: 'us-west', seq: 43 };
        await store.transaction(async (tx) => {
          await tx.putLocal('cursor/us-west', moved, at + 100);
          await tx.putLocal('cursor/eu-central', null, at + 100);
          await tx.putLocal('cursor/never-written', null, at + 100);
        });
        expect(await store.getLocal('cursor/us-west')).toEqual(moved);
        expect(await store.getLocal('cursor/eu-central')).toBeUndefined();
        expect(await store.listLocal('cursor/', { limit: 10 })).toEqual([
          { key: 'cursor/us-west', value: moved, updatedAt: at + 100 },
        ]);

        // A removed key can be set again.
        await store.transaction((tx) => tx.putLocal('cursor/eu-central', central, at + 200));
        expect(await store.listLocal('cursor/eu-central', { limit: 10 })).toEqual([
          { key: 'cursor/eu-central', value: central, updatedAt: at + 200 },
        ]);
      });

      it('commits with the entities of its transaction or not at all, and writes no change record', async () => {
        const m = mutation('sensor-1');
        const change = await store.transaction(async (tx) => {
          const c = await tx.apply(m);
          await tx.putLocal('cursor/us-west', { seq: 1 }, m.at);
          expect(await tx.getLocal('cursor/us-west')).toEqual({ seq: 1 });
          expect(await tx.listLocal('cursor/', { limit: 10 })).toEqual([
            { key: 'cursor/us-west', value: { seq: 1 }, updatedAt: m.at },
          ]);
          // Not visible outside before commit.
          expect(await store.getLocal('cursor/us-west')).toBeUndefined();
          expect(await store.listLocal('', { limit: 10 })).toEqual([]);
          return c;
        });
        expect(change).toEqual(expectedChange(m, 1));
        expect(await store.get('thing', 'sensor-1')).toEqual(expectedEntity(m));
        expect(await store.getLocal('cursor/us-west')).toEqual({ seq: 1 });
        expect(await allChanges(store)).toEqual([expectedChange(m, 1)]);

        // Local writes alone leave the change log as it was: nothing of them is replicated.
        await store.transaction(async (tx) => {
          await tx.putLocal('cursor/us-west', { seq: 2 }, m.at + 1);
          await tx.putLocal('dlq/1', { changeId: randomUUID() }, m.at + 1);
          await tx.putLocal('dlq/2', { changeId: randomUUID() }, m.at + 1);
          await tx.putLocal('dlq/2', null, m.at + 2);
        });
        expect(await store.lastSeq()).toBe(1);
        expect(await store.firstSeq()).toBe(1);
        expect(await store.maxHlc()).toEqual(m.hlc);
        expect(await allChanges(store)).toEqual([expectedChange(m, 1)]);
        expect(await localKeys(store, '', { limit: 10 })).toEqual(['cursor/us-west', 'dlq/1']);
        const local = await store.listLocal('', { limit: 10 });

        // A transaction that throws keeps neither its entities nor any of its local writes.
        const boom = new Error('boom');
        await expect(
          store.transaction(async (tx) => {
            await tx.apply(mutation('sensor-2'));
            await tx.putLocal('cursor/us-west', { seq: 3 }, m.at + 3);
            await tx.putLocal('cursor/eu-central', { seq: 9 }, m.at + 3);
            await tx.putLocal('dlq/1', null, m.at + 3);
            throw boom;
          }),
        ).rejects.toBe(boom);
        await expect(
          store.transaction(async (tx) => {
            await tx.putLocal('cursor/us-west', { seq: 4 }, m.at + 4);
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await store.get('thing', 'sensor-2', { includeDeleted: true })).toBeUndefined();
        expect(await store.listLocal('', { limit: 10 })).toEqual(local);
        expect(await store.lastSeq()).toBe(1);

        // The next transaction numbers its change right after the last committed one.
        const next = mutation('sensor-3');
        expect(await commit(store, next)).toEqual([expectedChange(next, 2)]);
      });

      it('keeps the local writes of each of many concurrent transactions with its own entities', async () => {
        const n = 60;
        const fails = (i: number): boolean => i % 5 === 2;
        // Every fourth transaction writes only local state.
        const localOnly = (i: number): boolean => i % 4 === 1;
        const planned = Array.from({ length: n }, (_, i) => mutation(`dev-${String(i).padStart(2, '0')}`));
        const results = await Promise.allSettled(
          planned.map((m, i) =>
            store.transaction(async (tx) => {
              if (!localOnly(i)) await tx.apply(m);
              await tx.putLocal(`applied/${m.key}`, { i }, m.at);
              if (fails(i)) throw new Error(`transaction ${i} fails`);
            }),
          ),
        );

        let entities = 0;
        for (const [i, r] of results.entries()) {
          const m = planned[i];
          if (!m) continue;
          const entity = await store.get('thing', m.key, { includeDeleted: true });
          const local = await store.getLocal(`applied/${m.key}`);
          if (fails(i)) {
            expect(r).toEqual({ status: 'rejected', reason: new Error(`transaction ${i} fails`) });
            expect(entity).toBeUndefined();
            expect(local).toBeUndefined();
          } else {
            expect(r.status).toBe('fulfilled');
            expect(entity).toEqual(localOnly(i) ? undefined : expectedEntity(m));
            expect(local).toEqual({ i });
            if (!localOnly(i)) entities += 1;
          }
        }
        expect(await localKeys(store, 'applied/', { limit: 1000 })).toEqual(
          planned.filter((_, i) => !fails(i)).map((m) => `applied/${m.key}`),
        );
        expect(await store.lastSeq()).toBe(entities);
        expect((await allChanges(store)).map((c) => c.seq)).toEqual(
          Array.from({ length: entities }, (_, i) => i + 1),
        );
      });

      it('keeps local state across close and reopen', async () => {
        const m = mutation('sensor-1');
        await store.transaction(async (tx) => {
          await tx.apply(m);
          await tx.putLocal('cursor/us-west', { seq: 17 }, T0 + 1);
          await tx.putLocal('dlq/1', { error: 'timeout' }, T0 + 2);
        });
        const local = await store.listLocal('', { limit: 10 });
        expect(local).toHaveLength(2);
        await store.close();

        const reopened = fixture.reopen();
        try {
          await reopened.init();
          expect(await reopened.listLocal('', { limit: 10 })).toEqual(local);
          expect(await reopened.getLocal('cursor/us-west')).toEqual({ seq: 17 });
          await reopened.transaction((tx) => tx.putLocal('cursor/us-west', { seq: 18 }, T0 + 3));
          expect(await reopened.getLocal('cursor/us-west')).toEqual({ seq: 18 });
          expect(await reopened.lastSeq()).toBe(1);
        } finally {
          await reopened.close();
        }
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
        await expect(fresh.scan({ limit: 1 })).rejects.toMatchObject({ code: 'IOTDR_STORE_NOT_INITIALIZED' });
        await expect(fresh.getLocal('a')).rejects.toMatchObject({ code: 'IOTDR_STORE_NOT_INITIALIZED' });
        await expect(fresh.pruneChanges(T0)).rejects.toMatchObject({ code: 'IOTDR_STORE_NOT_INITIALIZED' });
        await expect(fresh.purgeTombstones(T0)).rejects.toMatchObject({
          code: 'IOTDR_STORE_NOT_INITIALIZED',
        });
        await fresh.close();

        await store.close();
        await store.close();
        await expect(store.get('thing', 'a')).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
        await expect(store.list('thing', { limit: 1 })).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
        await expect(store.lastSeq()).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
        await expect(commit(store, mutation('a'))).rejects.toMatchObject({ code: 'IOTDR_STORE_CLOSED' });
        // Maintenance on a timer calls these with `.catch()`: a closed store must reject, not throw.
        const closed = { code: 'IOTDR_STORE_CLOSED' };
        await expect(store.scan({ limit: 1 })).rejects.toMatchObject(closed);
        await expect(store.getLocal('cursor/us-west')).rejects.toMatchObject(closed);
        await expect(store.listLocal('', { limit: 1 })).rejects.toMatchObject(closed);
        await expect(store.firstSeq()).rejects.toMatchObject(closed);
        await expect(store.pruneChanges(T0)).rejects.toMatchObject(closed);
        await expect(store.purgeTombstones(T0)).rejects.toMatchObject(closed);
        await expect(store.transaction((tx) => tx.putLocal('a', { n: 1 }, T0))).rejects.toMatchObject(closed);
      });
    });
  });
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/common/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { LIST_ALL_PAGE, RegistryService, TOKEN_CACHE_TTL_MS } from '../../src/registry/index.js';
import { PostgresStore, type RegistryStore, SqliteStore } from '../../src/registry/store/index.js';
import { RegistryTarget } from '../../src/replication/index.js';
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

    // https://docs.aws.amazon.com/iot/latest/apireference/API_AttachThingPrincipal.html and
    // https://docs.aws.amazon.com/iot/latest/developerguide/exclusive-thing.html: with
    // EXCLUSIVE_THING "the thing will be the only thing that's attached to the principal".
    it('keeps a certificate attached exclusively to its one thing; an untyped attachment is non-exclusive', async () => {
      const caDir = mkdtempSync(join(tmpdir(), 'iotdr-service-ca-'));
      const ca = await loadOrCreateCa(caDir).finally(() => rmSync(caDir, { recursive: true, force: true }));
      const withCa = new RegistryService({ store, region: 'us-east', clock, ca });
      const cert = (await withCa.createCertificate({})).certificate.certificateId;
      for (const t of ['assoc-1', 'assoc-2', 'assoc-3']) await service.putThing(t, {});
      // Stored before the type existed: no thingPrincipalType in the document.
      await service.transaction((tx) =>
        service.writeEntity(
          tx,
          'thing-principal',
          `assoc-1|${cert}`,
          cert,
          { thingName: 'assoc-1', certificateId: cert, attachedAt: '2025-01-01T00:00:00.000Z' },
          undefined,
        ),
      );
      expect(await service.listCertificateAttachments(cert)).toEqual([
        { thingName: 'assoc-1', thingPrincipalType: 'NON_EXCLUSIVE_THING' },
      ]);
      await service.attachCertificate('assoc-2', cert);
      const seq = await store.lastSeq();
      await expect(service.attachCertificate('assoc-3', cert, 'EXCLUSIVE_THING')).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_EXCLUSIVE_THING',
        status: 409,
        details: { things: ['assoc-1', 'assoc-2'] },
      });
      await expect(service.attachCertificate('assoc-1', cert, 'EXCLUSIVE_THING')).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_EXCLUSIVE_THING',
        details: { things: ['assoc-2'] },
      });
      expect(await store.lastSeq()).toBe(seq);
      await service.detachCertificate('assoc-2', cert);
      const exclusive = await service.attachCertificate('assoc-1', cert, 'EXCLUSIVE_THING');
      expect(exclusive).toMatchObject({ created: false, changed: true });
      expect(exclusive.item).toMatchObject({
        thingPrincipalType: 'EXCLUSIVE_THING',
        attachedAt: '2025-01-01T00:00:00.000Z',
      });
      await expect(service.attachCertificate('assoc-2', cert)).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_EXCLUSIVE_THING',
        details: { things: ['assoc-1'] },
      });
      expect(await service.listCertificateThings(cert)).toEqual(['assoc-1']);
    });

    // https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicyVersion.html: at most five
    // versions; the caller deletes one (never the default, API_DeletePolicyVersion.html) first.
    it('refuses a sixth policy version, here and from a peer, and never gives a version id twice', async () => {
      const doc = (i: number) => ({
        policyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: `topic/v${i}` }],
        },
      });
      for (let i = 1; i <= 5; i++) await service.putPolicy('five', doc(i));
      const seq = await store.lastSeq();
      await expect(service.putPolicy('five', doc(6))).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT',
        status: 409,
        details: { limit: 5 },
      });
      await expect(service.deletePolicyVersion('five', '5')).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_POLICY_DEFAULT_VERSION',
      });
      expect(await store.lastSeq()).toBe(seq);
      const five = await service.getPolicy('five');
      // A peer's document with six versions is refused (replication dead-letters it), never trimmed.
      const { version: _v, ...stored } = five;
      const six = {
        ...stored,
        versions: [...stored.versions, { versionId: '6', document: doc(6).policyDocument, createdAt: 'x' }],
      };
      expect(service.kinds.problem('policy', 'five', null, six)).toMatchObject({
        code: 'IOTDR_REGISTRY_INVALID_ENTITY',
        reason: expect.stringMatching(/versions/),
      });
      expect(service.kinds.problem('policy', 'five', null, stored)).toBeUndefined();

      await service.setDefaultPolicyVersion('five', { defaultVersionId: '4' });
      await service.deletePolicyVersion('five', '5');
      const next = await service.putPolicy('five', doc(7));
      expect(next.item.defaultVersionId).toBe('6');
      expect(next.item.versions.map((v) => v.versionId)).toEqual(['1', '2', '3', '4', '6']);
    });

    // https://docs.aws.amazon.com/iot/latest/developerguide/thing-groups.html: a policy attached to
    // a parent group is inherited by its child groups and by all of the things in them.
    it("gives a thing the policies of its groups and of their ancestors, and forgets a group's when it leaves", async () => {
      const allow = {
        policyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
        },
      };
      await service.putPolicy('inh-root', allow);
      await service.putPolicy('inh-leaf', allow);
      await service.putThingGroup('inh-root', {});
      await service.putThingGroup('inh-mid', { parentGroupName: 'inh-root' });
      await service.putThingGroup('inh-leaf', { parentGroupName: 'inh-mid' });
      await service.putThing('inh-thing', {});
      await service.addThingToGroup('inh-leaf', 'inh-thing');
      await service.attachGroupPolicy('inh-root', 'inh-root');
      await service.attachGroupPolicy('inh-leaf', 'inh-leaf');
      expect(await service.inheritedPolicies('inh-thing')).toEqual({
        thingGroupNames: ['inh-leaf', 'inh-mid', 'inh-root'],
        policyNames: ['inh-leaf', 'inh-root'],
      });
      await service.removeThingFromGroup('inh-leaf', 'inh-thing');
      expect(await service.inheritedPolicies('inh-thing')).toEqual({ thingGroupNames: [], policyNames: [] });
      await expect(service.deletePolicy('inh-root')).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_STILL_ATTACHED',
      });
      await service.deletePolicy('inh-root', { force: true });
      expect(await service.listGroupPolicies('inh-root')).toEqual([]);
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

/**
 * Two regions add a version to the same policy before either sees the other's: replication keeps
 * one whole document (last writer wins per entity), so both end with the same five versions or
 * fewer, and the other region's new version is gone from both (docs/registry.md, "Policy versions").
 */
describe('policy versions made in two regions at once', () => {
  it('converge on one document of at most five versions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iotdr-versions-'));
    const stores = [
      new SqliteStore({ path: join(dir, 'east.db') }),
      new SqliteStore({ path: join(dir, 'west.db') }),
    ];
    try {
      for (const s of stores) await s.init();
      let now = Date.parse('2026-01-01T00:00:00Z');
      const clock: Clock = { now: () => now++ };
      const [east, west] = ['us-east', 'us-west'].map(
        (region, i) => new RegistryService({ store: stores[i] as RegistryStore, region, clock }),
      ) as [RegistryService, RegistryService];
      const doc = (topic: string) => ({
        policyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: `topic/${topic}` }],
        },
      });
      for (let i = 1; i <= 4; i++) await east.putPolicy('shared', doc(`v${i}`));
      const exchange = async (from: RegistryService, to: RegistryService, after: number) => {
        const { changes } = await from.changes({ after, limit: 1000 });
        const target = new RegistryTarget(to);
        const result = await target.applyChanges(from.region, changes, changes.at(-1)?.seq ?? after);
        expect(result.outcomes.every((o) => o !== 'dead-letter')).toBe(true);
      };
      await exchange(east, west, 0);
      const eastSeq = await east.store.lastSeq();
      const westSeq = await west.store.lastSeq();
      await east.putPolicy('shared', doc('from-east'));
      await west.putPolicy('shared', doc('from-west'));
      await exchange(east, west, eastSeq);
      await exchange(west, east, westSeq);
      const [a, b] = [await east.getPolicy('shared'), await west.getPolicy('shared')];
      expect(a).toEqual(b);
      expect(a.versions).toHaveLength(5);
      // The later write (west's, by the clock) is the one kept everywhere.
      expect(a.versions.at(-1)?.document).toMatchObject({ Statement: [{ Resource: ['topic/from-west'] }] });
      await expect(east.putPolicy('shared', doc('sixth'))).rejects.toMatchObject({
        code: 'IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT',
      });
    } finally {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

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

/**
 * Revocation is final in every region, not only in the one that revoked: a REVOKED certificate
 * (or the tombstone of one deleted) outranks any other write of the same certificate, whatever
 * its clock, so a region that had not seen the revocation yet cannot undo it by setting the
 * certificate INACTIVE or ACTIVE, or by deleting and registering it again. Real regions' services
 * on real stores, changes delivered through the apply target in chosen orders.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { regionRegistryService } from '../../src/processes/index.js';
import {
  type ChangeRecord,
  type Hlc,
  PostgresStore,
  type RegistryService,
  type RegistryStore,
  SqliteStore,
} from '../../src/registry/index.js';
import {
  type ChangeOutcome,
  computeDigest,
  RegistryTarget,
  type Stamp,
  stampOf,
  wins,
} from '../../src/replication/index.js';
import type { Engine } from '../harness/cluster.js';
import { type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, provision } from '../harness/devices.js';
import { makeSelfSigned } from '../pki/helpers.js';
import { entityView, onEachEngine } from './support.js';

interface Region {
  name: string;
  service: RegistryService;
  store: RegistryStore;
  /** Sets this region's wall clock (ms), so each write's HLC is chosen by the test. */
  at(ms: number): void;
}

const T0 = Date.now();
const CERT = 'certificate';

async function openStore(engine: Engine, dir: string, name: string): Promise<RegistryStore> {
  const store =
    engine.engine === 'sqlite'
      ? new SqliteStore({ path: join(dir, `${name}.db`) })
      : new PostgresStore({
          connectionString: engine.url,
          schema: `rev_${process.pid}_${name}_${Math.floor(Math.random() * 1e9)}`,
        });
  await store.init();
  return store;
}

/** Opens regions by name on fresh stores; `close` closes them all. */
function regions(engine: () => Engine) {
  const opened: RegistryStore[] = [];
  let dir: string | undefined;
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return async (...names: string[]): Promise<Region[]> => {
    dir ??= await mkdtemp(join(tmpdir(), 'iotdr-revocation-'));
    const out: Region[] = [];
    for (const name of names) {
      const store = await openStore(engine(), dir, name.replace(/-/g, '_'));
      opened.push(store);
      let now = T0;
      const service = regionRegistryService({ store, region: name, clock: { now: () => now } });
      await service.init();
      out.push({ name, service, store, at: (ms) => (now = ms) });
    }
    return out;
  };
}

/** The changes first made in `from`, after `after`, in its commit order. */
async function ownChanges(from: Region, after = 0): Promise<ChangeRecord[]> {
  return (await from.service.changes({ after, limit: 1000, origin: from.name })).changes;
}

/** Applies changes in `to` through its apply target, as a link from `from` would. */
async function apply(to: Region, from: string, changes: ChangeRecord[]): Promise<ChangeOutcome[]> {
  if (changes.length === 0) return [];
  const last = changes[changes.length - 1]?.seq ?? 0;
  return (await new RegistryTarget(to.service).applyChanges(from, changes, last)).outcomes;
}

/** Delivers whatever `from` made that `to` has not received from it yet, in order. */
async function deliver(from: Region, to: Region): Promise<ChangeOutcome[]> {
  const { cursor } = await new RegistryTarget(to.service).progress(from.name);
  return apply(to, from.name, await ownChanges(from, cursor));
}

/** The certificate as stored, tombstone included: what must be identical in every region. */
async function stored(region: Region, id: string): Promise<string> {
  const record = await region.store.get(CERT, id, { includeDeleted: true });
  if (!record) throw new Error(`certificate ${id} unknown in ${region.name}`);
  return entityView(record);
}

/** Every region holds the same certificate (document, version, HLC, origin) and the same digest. */
async function expectConverged(all: Region[], id: string): Promise<void> {
  const [first, ...rest] = all as [Region, ...Region[]];
  const view = await stored(first, id);
  const digest = await computeDigest(first.store);
  for (const r of rest) {
    expect(await stored(r, id), r.name).toBe(view);
    expect(await computeDigest(r.store), r.name).toEqual(digest);
  }
}

async function expectRevokedCode(write: Promise<unknown>): Promise<void> {
  await expect(write).rejects.toMatchObject({ code: 'IOTDR_REGISTRY_CERTIFICATE_REVOKED', status: 409 });
}

/** A certificate made elsewhere, registered ACTIVE in `home` and delivered to the others. */
async function registered(home: Region, others: Region[]): Promise<{ id: string; pem: string }> {
  const pem = await makeSelfSigned({ kind: 'ec', curve: 'P-256' }, 'CN=door-1');
  home.at(T0);
  const { item } = await home.service.registerCertificate({ certificatePem: pem });
  for (const r of others) await deliver(home, r);
  return { id: item.certificateId, pem };
}

describe('the merge rule', () => {
  const w = (wall: number, origin: string, final = false): Stamp => ({
    hlc: { wall, counter: 0 },
    origin,
    final,
  });
  const permutations = <T>(items: T[]): T[][] =>
    items.length <= 1
      ? [items]
      : items.flatMap((item, i) =>
          permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
        );
  const keep = (writes: Stamp[]): Stamp | undefined =>
    writes.reduce<Stamp | undefined>(
      (current, incoming) => (wins(incoming, current) ? incoming : current),
      undefined,
    );

  it('keeps the same write whatever order the writes arrive in: the last revocation, else the last write', () => {
    const register = w(1, 'us-east');
    const revoke = w(10, 'us-east', true);
    const inactive = w(11, 'us-west');
    const resume = w(12, 'us-west');
    const revokedTombstone = w(13, 'us-east', true);
    const deleteElsewhere = w(14, 'eu-central');
    const registerAgain = w(15, 'eu-central');
    const all = [register, revoke, inactive, resume, revokedTombstone, deleteElsewhere, registerAgain];
    for (const order of permutations(all)) expect(keep(order)).toBe(revokedTombstone);
    for (const order of permutations([register, revoke, inactive, resume, registerAgain]))
      expect(keep(order)).toBe(revoke);
    // Without a revocation it is last writer wins, as before.
    for (const order of permutations([register, inactive, resume, deleteElsewhere]))
      expect(keep(order)).toBe(deleteElsewhere);
    // The same write delivered again does not win.
    expect(wins(revoke, revoke)).toBe(false);
  });

  it('calls a write final when it is a certificate that says REVOKED, live or tombstone', () => {
    const at: { hlc: Hlc; origin: string } = { hlc: { wall: 1, counter: 0 }, origin: 'us-east' };
    expect(stampOf(CERT, { status: 'REVOKED' }, at).final).toBe(true);
    expect(stampOf(CERT, { status: 'INACTIVE' }, at).final).toBe(false);
    expect(stampOf(CERT, null, at).final).toBe(false);
    expect(stampOf('thing', { status: 'REVOKED' }, at).final).toBe(false);
  });
});

onEachEngine('revocation is final in every region', (engine) => {
  const open = regions(engine);

  it('revoked in one region while the other sets it INACTIVE, then ACTIVE, later: REVOKED in both, either delivery order', async () => {
    for (const eastFirst of [true, false]) {
      const suffix = eastFirst ? 'a' : 'b';
      const [east, west] = (await open(`east-${suffix}`, `west-${suffix}`)) as [Region, Region];
      const { id } = await registered(east, [west]);

      east.at(T0 + 1000);
      await east.service.updateCertificateStatus(id, { status: 'REVOKED' });
      west.at(T0 + 2000);
      await west.service.updateCertificateStatus(id, { status: 'INACTIVE' });
      west.at(T0 + 3000);
      await west.service.updateCertificateStatus(id, { status: 'ACTIVE' });

      if (eastFirst) {
        expect(await deliver(east, west)).toEqual(['applied']);
        expect(await deliver(west, east)).toEqual(['stale', 'stale']);
      } else {
        expect(await deliver(west, east)).toEqual(['stale', 'stale']);
        expect(await deliver(east, west)).toEqual(['applied']);
      }
      for (const r of [east, west]) {
        expect((await r.service.getCertificate(id)).status, r.name).toBe('REVOKED');
        await expectRevokedCode(r.service.updateCertificateStatus(id, { status: 'ACTIVE' }));
      }
      await expectConverged([east, west], id);
    }
  }, 60_000);

  it('revoked then deleted in one region while the other resumes it: gone in both, and neither registers it again', async () => {
    for (const eastFirst of [true, false]) {
      const suffix = eastFirst ? 'a' : 'b';
      const [east, west] = (await open(`east-${suffix}`, `west-${suffix}`)) as [Region, Region];
      const { id, pem } = await registered(east, [west]);
      west.at(T0 + 500);
      await west.service.updateCertificateStatus(id, { status: 'INACTIVE' });
      await deliver(west, east);

      east.at(T0 + 1000);
      await east.service.updateCertificateStatus(id, { status: 'REVOKED' });
      east.at(T0 + 1500);
      await east.service.deleteCertificate(id);
      // The resume comes after the delete, by the clock.
      west.at(T0 + 3000);
      await west.service.updateCertificateStatus(id, { status: 'ACTIVE' });

      if (eastFirst) {
        expect(await deliver(east, west)).toEqual(['applied', 'applied']);
        expect(await deliver(west, east)).toEqual(['stale']);
      } else {
        expect(await deliver(west, east)).toEqual(['stale']);
        expect(await deliver(east, west)).toEqual(['applied', 'applied']);
      }
      for (const r of [east, west]) {
        await expect(r.service.getCertificate(id)).rejects.toMatchObject({
          code: 'IOTDR_REGISTRY_NOT_FOUND',
        });
        const tombstone = await r.store.get(CERT, id, { includeDeleted: true });
        expect(tombstone?.deleted).toBe(true);
        expect(tombstone?.doc).toMatchObject({ certificateId: id, status: 'REVOKED' });
        await expectRevokedCode(r.service.registerCertificate({ certificatePem: pem }));
        await expectRevokedCode(r.service.registerCertificate({ certificatePem: pem, status: 'INACTIVE' }));
      }
      await expectConverged([east, west], id);
    }
  }, 60_000);

  it('deleted and registered again in the other region while the revocation is in flight: REVOKED in both', async () => {
    const [east, west] = (await open('east', 'west')) as [Region, Region];
    const { id, pem } = await registered(east, [west]);
    east.at(T0 + 1000);
    await east.service.updateCertificateStatus(id, { status: 'REVOKED' });
    west.at(T0 + 2000);
    await west.service.deleteCertificate(id, { force: true });
    west.at(T0 + 3000);
    await west.service.registerCertificate({ certificatePem: pem });

    expect(await deliver(west, east)).toEqual(['stale', 'stale']);
    expect(await deliver(east, west)).toEqual(['applied']);
    for (const r of [east, west]) {
      expect((await r.service.getCertificate(id)).status, r.name).toBe('REVOKED');
      await expectRevokedCode(r.service.registerCertificate({ certificatePem: pem }));
    }
    await expectConverged([east, west], id);
  }, 30_000);

  it('three regions: the third keeps the revoked tombstone whatever order, and from a snapshot too', async () => {
    const orders: Array<{ name: string; run: (c: Region, east: Region, west: Region) => Promise<void> }> = [
      {
        name: 'west-then-east',
        run: async (c, east, west) => {
          await deliver(west, c);
          await deliver(east, c);
        },
      },
      {
        name: 'east-then-west',
        run: async (c, east, west) => {
          await deliver(east, c);
          await deliver(west, c);
        },
      },
      {
        // Only the tombstone reaches it, as in a snapshot of us-east, after us-west's resume.
        name: 'snapshot',
        run: async (c, east, west) => {
          await deliver(west, c);
          const target = new RegistryTarget(c.service);
          await target.beginBootstrap(east.name, await east.store.lastSeq());
          const entities = await east.store.scan({ limit: 100, origin: east.name, includeDeleted: true });
          expect(entities.some((e) => e.kind === CERT && e.deleted)).toBe(true);
          await target.applySnapshot(east.name, entities, null);
        },
      },
    ];
    for (const [i, order] of orders.entries()) {
      const [east, west, central] = (await open(`east-${i}`, `west-${i}`, `central-${i}`)) as [
        Region,
        Region,
        Region,
      ];
      const { id, pem } = await registered(east, [west, central]);
      east.at(T0 + 1000);
      await east.service.updateCertificateStatus(id, { status: 'REVOKED' });
      east.at(T0 + 1500);
      await east.service.deleteCertificate(id);
      west.at(T0 + 2000);
      await west.service.updateCertificateStatus(id, { status: 'INACTIVE' });
      west.at(T0 + 3000);
      await west.service.updateCertificateStatus(id, { status: 'ACTIVE' });

      await order.run(central, east, west);
      await deliver(east, west);
      await deliver(west, east);
      const tombstone = await central.store.get(CERT, id, { includeDeleted: true });
      expect(tombstone?.deleted, order.name).toBe(true);
      await expectRevokedCode(central.service.registerCertificate({ certificatePem: pem }));
      await expectConverged([east, west, central], id);
    }
  }, 90_000);

  it("keeps a revoked certificate's tombstone past the tombstone retention, until the certificate has expired", async () => {
    const [east] = (await open('east')) as [Region];
    const { id } = await registered(east, []);
    const notAfter = Date.parse((await east.service.getCertificate(id)).notAfter);
    await east.service.updateCertificateStatus(id, { status: 'REVOKED', expectedVersion: 1 });
    await east.service.deleteCertificate(id);
    const plain = await registered(east, []);
    await east.service.updateCertificateStatus(plain.id, { status: 'INACTIVE' });
    await east.service.deleteCertificate(plain.id);

    // As the maintenance purges with a retention of one minute, 30 days from now.
    const retentionMs = 60_000;
    const later = T0 + 30 * 86_400_000;
    expect(notAfter).toBeGreaterThan(later);
    expect(await east.store.purgeTombstones(later - retentionMs)).toBe(1);
    expect(await east.store.get(CERT, plain.id, { includeDeleted: true })).toBeUndefined();
    expect((await east.store.get(CERT, id, { includeDeleted: true }))?.doc).toMatchObject({
      status: 'REVOKED',
      retainUntil: notAfter,
    });
    expect(await east.store.purgeTombstones(notAfter)).toBe(0);
    expect(await east.store.purgeTombstones(notAfter + 1)).toBe(1);
  }, 30_000);

  it('dead-letters a delete that carries a document other than a revoked certificate tombstone', async () => {
    const [east, west] = (await open('east', 'west')) as [Region, Region];
    const { id } = await registered(east, [west]);
    await east.service.updateCertificateStatus(id, { status: 'REVOKED' });
    await east.service.deleteCertificate(id);
    const [revoke, del] = (await ownChanges(east)).slice(-2) as [ChangeRecord, ChangeRecord];
    const forged: ChangeRecord = { ...del, after: { ...del.after, retainUntil: 'forever' } };
    const thing: ChangeRecord = {
      ...del,
      seq: del.seq + 1,
      id: 'forged-thing',
      kind: 'thing',
      key: 'door-1',
      after: { thingName: 'door-1' },
    };
    expect(await apply(west, east.name, [revoke, forged, thing])).toEqual([
      'applied',
      'dead-letter',
      'dead-letter',
    ]);
    const letters = await new RegistryTarget(west.service).deadLetters(east.name);
    expect(letters.map((l) => l.code)).toEqual([
      'IOTDR_REGISTRY_INVALID_ENTITY',
      'IOTDR_REGISTRY_INVALID_ENTITY',
    ]);
    expect((await west.service.getCertificate(id)).status).toBe('REVOKED');
  }, 30_000);
});

describe('revocation at the broker', () => {
  it('a device whose certificate was revoked in one region while the other resumed it connects to neither', async () => {
    const c = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' });
    try {
      const east = c.regions['us-east'] as ClusterRegion;
      const west = c.regions['us-west'] as ClusterRegion;
      const device = await provision(east, 'door-7');
      await eventually(
        async () =>
          (await west.call('GET', `/v1/certificates/${device.certificateId}/policies`)).body?.items
            ?.length === 1,
        'the certificate and its policy in us-west',
      );
      (await connect(west, device)).end(true);

      // us-west cut off: us-east revokes and deletes; then us-west, alone, suspends and resumes it.
      await west.stop();
      const path = `/v1/certificates/${device.certificateId}`;
      expect((await east.call('PATCH', path, { status: 'REVOKED' })).status).toBe(200);
      expect((await east.call('DELETE', `${path}?force=true`)).status).toBe(204);
      await east.stop();
      await west.start();
      expect((await west.call('PATCH', path, { status: 'INACTIVE' })).status).toBe(200);
      expect((await west.call('PATCH', path, { status: 'ACTIVE' })).status).toBe(200);
      await east.start();

      await eventually(async () => (await west.call('GET', path)).status === 404, 'the delete in us-west');
      const digests = async () =>
        Promise.all(
          [east, west].map(async (r) => (await r.call('GET', '/v1/replication/digest')).body.kinds),
        );
      await eventually(async () => {
        const [a, b] = await digests();
        return JSON.stringify(a) === JSON.stringify(b);
      }, 'equal digests');
      for (const r of [east, west]) {
        expect((await r.call('GET', path)).status, r.name).toBe(404);
        await expect(connect(r, device, `door-7-${r.name}`), r.name).rejects.toThrow();
        const again = await r.call('POST', '/v1/certificates/register', { certificatePem: device.certPem });
        expect(again.status, r.name).toBe(409);
        expect(again.body.code, r.name).toBe('IOTDR_REGISTRY_CERTIFICATE_REVOKED');
      }
    } finally {
      await c.close();
    }
  }, 90_000);
});

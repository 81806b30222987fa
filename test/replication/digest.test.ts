import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EntityRecord, ScanOptions } from '../../src/registry/index.js';
import {
  bucketEntries,
  bucketOf,
  computeDigest,
  DIGEST_BUCKETS,
  type DigestSource,
  digestOf,
  EMPTY_DIGEST,
} from '../../src/replication/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';

function entity(kind: string, key: string, version = 1, origin = 'us-east'): EntityRecord {
  return {
    kind,
    key,
    ref: null,
    doc: {},
    version,
    hlc: { wall: 1_700_000_000_000 + version, counter: 0 },
    origin,
    deleted: false,
    updatedAt: 0,
  };
}

/** Live entities in (kind, key) order, served like a store. */
function memoryStore(entities: EntityRecord[]): DigestSource {
  const sorted = [...entities].sort((a, b) =>
    a.kind === b.kind ? (a.key < b.key ? -1 : 1) : a.kind < b.kind ? -1 : 1,
  );
  return {
    async scan(o: ScanOptions) {
      const after = o.after;
      return sorted
        .filter((e) => !after || e.kind > after.kind || (e.kind === after.kind && e.key > after.key))
        .slice(0, o.limit);
    },
    async list(kind, o) {
      return sorted
        .filter((e) => e.kind === kind && (o.after === undefined || e.key > o.after))
        .slice(0, o.limit);
    },
  };
}

describe('digests of a store', () => {
  const things = Array.from({ length: 500 }, (_, i) => entity('thing', `device-${i}`));
  const policies = Array.from({ length: 20 }, (_, i) => entity('policy', `p-${i}`));

  it('does not depend on page size or order, and a kind is the sum of its buckets', async () => {
    const whole = await computeDigest(memoryStore([...things, ...policies]), { pageSize: 10_000 });
    const paged = await computeDigest(memoryStore([...policies, ...things].reverse()), { pageSize: 7 });
    expect(paged).toEqual(whole);
    const thing = whole.kinds.find((k) => k.kind === 'thing');
    expect(thing?.count).toBe(500);
    expect(thing?.buckets).toHaveLength(DIGEST_BUCKETS);
    expect(thing?.digest).toBe(digestOf('thing', things));
    const bucket = bucketOf('device-7');
    expect(thing?.buckets[bucket]).toBe(
      digestOf(
        'thing',
        things.filter((t) => bucketOf(t.key) === bucket),
      ),
    );
  });

  it('changes with one version, lists every asked kind, and pages through buckets', async () => {
    const before = await computeDigest(memoryStore(things), { kinds: ['thing', 'policy'] });
    const changed = things.map((t) => (t.key === 'device-42' ? { ...t, version: 2 } : t));
    const after = await computeDigest(memoryStore(changed), { kinds: ['thing', 'policy'] });
    expect(after.kinds.map((k) => k.kind)).toEqual(['policy', 'thing']);
    expect(after.kinds[0]).toMatchObject({ count: 0, digest: EMPTY_DIGEST });
    const differing = after.kinds[1]?.buckets.flatMap((b, i) =>
      b === before.kinds[1]?.buckets[i] ? [] : [i],
    );
    expect(differing).toEqual([bucketOf('device-42')]);

    const store = memoryStore(things);
    const buckets = [bucketOf('device-1'), bucketOf('device-2')];
    const expected = things.filter((t) => buckets.includes(bucketOf(t.key))).map((t) => t.key);
    const seen: string[] = [];
    let next: string | undefined;
    do {
      const page = await bucketEntries(store, 'thing', buckets, {
        limit: 3,
        pageSize: 16,
        ...(next === undefined ? {} : { after: next }),
      });
      expect(page.entries.length).toBeLessThanOrEqual(3);
      seen.push(...page.entries.map((e) => e.key));
      next = page.next;
    } while (next !== undefined);
    expect(seen).toEqual(expected.sort());
  });
});

interface DigestBody {
  region: string;
  kinds: Array<{ kind: string; count: number; digest: string; buckets: string[] }>;
}

function thingDoc(name: string) {
  const at = new Date().toISOString();
  return { thingName: name, thingTypeName: null, attributes: {}, createdAt: at, updatedAt: at };
}

/** Writes straight into a region's store, as a change first made in `origin`. */
async function writeDirect(region: ClusterRegion, name: string, version: number, origin: string) {
  const service = region.running?.service;
  if (!service) throw new Error(`${region.name} is not running`);
  await service.transaction((tx) =>
    tx.apply({
      changeId: randomUUID(),
      kind: 'thing',
      key: name,
      op: 'upsert',
      ref: null,
      doc: thingDoc(name),
      version,
      hlc: { wall: Date.now(), counter: 0 },
      origin,
      at: Date.now(),
    }),
  );
}

describe('digests of two replicating regions', () => {
  let c: Cluster;
  let east: ClusterRegion;
  let west: ClusterRegion;
  beforeAll(async () => {
    c = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' });
    east = c.regions['us-east'] as ClusterRegion;
    west = c.regions['us-west'] as ClusterRegion;
  });
  afterAll(async () => c?.close());

  const digestOfRegion = async (r: ClusterRegion, token?: string) => {
    const res = await r.call('GET', '/v1/replication/digest', undefined, token);
    expect(res.status).toBe(200);
    return res.body as DigestBody;
  };
  const thingKind = (d: DigestBody) => d.kinds.find((k) => k.kind === 'thing');

  it('agree once converged, and narrow down to exactly the keys that differ', async () => {
    for (let i = 0; i < 30; i++) {
      const r = i % 2 === 0 ? east : west;
      expect((await r.call('PUT', `/v1/things/t-${i}`, { attributes: { n: String(i) } })).status).toBe(201);
    }
    await eventually(async () => {
      const [a, b] = await Promise.all([digestOfRegion(east), digestOfRegion(west)]);
      return thingKind(a)?.count === 30 && JSON.stringify(a.kinds) === JSON.stringify(b.kinds);
    }, 'equal digests');

    // The digest counts and lists the keys of every kind the registry knows, command-and-control
    // documents included: peers and admins compare, a reader gets neither the digest nor a bucket.
    const made = await east.call('POST', '/v1/tokens', { name: 'console', role: 'reader' });
    const kinds = (await digestOfRegion(east)).kinds.map((k) => k.kind);
    expect(kinds).toEqual(expect.arrayContaining(['thing-group', 'onboarding-job', 'idempotency-key']));
    for (const path of ['/v1/replication/digest', '/v1/replication/digest/onboarding-job/0,64,128,255']) {
      const refused = await east.call('GET', path, undefined, made.body.token);
      expect(refused.status, path).toBe(403);
      expect(refused.body.code, path).toBe('IOTDR_AUTH_FORBIDDEN');
    }
    await eventually(async () => {
      const [a, b] = await Promise.all([digestOfRegion(east), digestOfRegion(west)]);
      return JSON.stringify(a.kinds) === JSON.stringify(b.kinds);
    }, 'the reader token to replicate');

    // Changes of an origin neither region replicates stay where they were written: us-east
    // gains an extra thing, us-west a newer version of t-4.
    await writeDirect(east, 'extra', 1, 'elsewhere');
    await writeDirect(west, 't-4', 2, 'elsewhere');

    const [a, b] = await Promise.all([digestOfRegion(east), digestOfRegion(west)]);
    const ta = thingKind(a);
    const tb = thingKind(b);
    expect(ta?.count).toBe(31);
    expect(tb?.count).toBe(30);
    expect(ta?.digest).not.toBe(tb?.digest);
    const differing = ta?.buckets.flatMap((d, i) => (d === tb?.buckets[i] ? [] : [i])) ?? [];
    expect(differing).toEqual([...new Set([bucketOf('extra'), bucketOf('t-4')])].sort((x, y) => x - y));
    const others = a.kinds.filter((k) => k.kind !== 'thing');
    expect(others).toEqual(b.kinds.filter((k) => k.kind !== 'thing'));

    const path = `/v1/replication/digest/thing/${differing.join(',')}`;
    const [la, lb] = await Promise.all([east.call('GET', path), west.call('GET', path)]);
    expect(la.status).toBe(200);
    const index = (entries: Array<{ key: string; version: number; origin: string }>) =>
      new Map(entries.map((e) => [e.key, `${e.version}/${e.origin}`]));
    const ia = index(la.body.entries);
    const ib = index(lb.body.entries);
    const keys = [...new Set([...ia.keys(), ...ib.keys()])].filter((k) => ia.get(k) !== ib.get(k));
    expect(keys.sort()).toEqual(['extra', 't-4']);
    expect(ia.get('extra')).toBe('1/elsewhere');
    expect(ib.has('extra')).toBe(false);
    expect(ia.get('t-4')).toBe('1/us-east');
    expect(ib.get('t-4')).toBe('2/elsewhere');
    // Each listing is exactly the bucket's content: its digest is the bucket digest.
    for (const bucket of differing) {
      const entries = la.body.entries.filter((e: { bucket: number }) => e.bucket === bucket);
      expect(digestOf('thing', entries)).toBe(ta?.buckets[bucket]);
    }
  });

  it('refuses a bucket out of range, and documents the routes', async () => {
    const res = await east.call('GET', '/v1/replication/digest/thing/3,256');
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('IOTDR_VALIDATION_FAILED');
    const doc = await east.call('GET', '/openapi.json');
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining(['/v1/replication/digest', '/v1/replication/digest/{kind}/{buckets}']),
    );
  });
});

describe('digests without replication', () => {
  let c: Cluster;
  afterAll(async () => c?.close());

  it('differ when one region has a thing the other never received', async () => {
    c = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' }, { replication: { enabled: false } });
    const east = c.regions['us-east'] as ClusterRegion;
    const west = c.regions['us-west'] as ClusterRegion;
    expect((await east.call('PUT', '/v1/things/only-east', {})).status).toBe(201);
    const [a, b] = await Promise.all([
      east.call('GET', '/v1/replication/digest'),
      west.call('GET', '/v1/replication/digest'),
    ]);
    const ta = a.body.kinds.find((k: { kind: string }) => k.kind === 'thing');
    const tb = b.body.kinds.find((k: { kind: string }) => k.kind === 'thing');
    expect([ta.count, tb.count]).toEqual([1, 0]);
    expect(tb.digest).toBe(EMPTY_DIGEST);
    const bucket = bucketOf('only-east');
    const listed = await east.call('GET', `/v1/replication/digest/thing/${bucket}`);
    expect(listed.body.entries.map((e: { key: string }) => e.key)).toEqual(['only-east']);
  });
});

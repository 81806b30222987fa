/**
 * What a replication figure must prove before it is reported: both regions hold the same
 * entities. Each store is read in full after its region stopped, and every entity of the given
 * kinds goes into a digest: kind, key, ref, version, HLC, origin, tombstone flag and the document
 * with its keys sorted (PostgreSQL's JSONB does not keep their order).
 */
import { createHash } from 'node:crypto';
import { PostgresStore, type RegistryStore, SqliteStore } from '../../src/registry/index.js';
import { check } from '../registry/common.js';
import type { StoreSpec } from './regions.js';

const PAGE = 5000;

export interface Digest {
  counts: Record<string, number>;
  sha256: string;
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

function open(spec: StoreSpec): RegistryStore {
  return spec.engine === 'sqlite'
    ? new SqliteStore({ path: spec.path })
    : new PostgresStore({ connectionString: spec.url, schema: spec.schema, poolSize: 1 });
}

/** Digest of every entity (tombstones too) of `kinds` in the store; its region must be stopped. */
export async function digest(spec: StoreSpec, kinds: readonly string[]): Promise<Digest> {
  const store = open(spec);
  await store.init();
  try {
    const wanted = new Set(kinds);
    const counts: Record<string, number> = Object.fromEntries(kinds.map((k) => [k, 0]));
    const hash = createHash('sha256');
    let after: { kind: string; key: string } | undefined;
    // Bounded: every page moves `after` forward, and the store holds finitely many entities.
    for (;;) {
      const page = await store.scan({ limit: PAGE, includeDeleted: true, ...(after ? { after } : {}) });
      for (const e of page) {
        if (!wanted.has(e.kind)) continue;
        counts[e.kind] = (counts[e.kind] ?? 0) + 1;
        hash.update(
          `${e.kind}\0${e.key}\0${e.ref}\0${e.version}\0${e.hlc.wall}.${e.hlc.counter}\0${e.origin}\0${e.deleted}\0${canonical(e.doc)}\n`,
        );
      }
      const last = page[page.length - 1];
      if (page.length < PAGE || !last) break;
      after = { kind: last.kind, key: last.key };
    }
    return { counts, sha256: hash.digest('hex') };
  } finally {
    await store.close();
  }
}

/** Fails unless both stores hold the same entities of `kinds`, `expected` of each kind given. */
export async function checkSame(
  what: string,
  east: StoreSpec,
  west: StoreSpec,
  kinds: readonly string[],
  expected: Record<string, number>,
): Promise<Digest> {
  const [a, b] = [await digest(east, kinds), await digest(west, kinds)];
  for (const [kind, n] of Object.entries(expected)) {
    check(a.counts[kind] === n, `${what}: us-east holds ${a.counts[kind]} ${kind} entities, expected ${n}`);
    check(b.counts[kind] === n, `${what}: us-west holds ${b.counts[kind]} ${kind} entities, expected ${n}`);
  }
  check(
    a.sha256 === b.sha256,
    `${what}: the stores differ (us-east ${JSON.stringify(a.counts)} ${a.sha256.slice(0, 12)}, us-west ${JSON.stringify(b.counts)} ${b.sha256.slice(0, 12)})`,
  );
  return a;
}

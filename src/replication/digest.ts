import { createHash } from 'node:crypto';
import type { Hlc, RegistryStore } from '../registry/index.js';

/**
 * Digests of a region's live entities, so two regions can be compared without listing a million
 * devices: equal digests per kind mean equal sets; where they differ, 256 bucket digests say which
 * slice of the keys to fetch.
 *
 * An entity counts as its last write: (kind, key, version, hlc, origin). Replication copies all
 * five unchanged, and two writes never share an HLC and origin, so regions that converged agree
 * on them. The version alone is not enough: during a partition both regions can write version 3
 * of the same thing. The document is left out on purpose: it is fixed by the write that made it,
 * and hashing it would need a canonical JSON form (PostgreSQL's jsonb reorders keys).
 *
 * A set's digest is the sum modulo 2^256 of SHA-256 of each entity, read as a big-endian integer.
 * A sum is order-independent (pages, engines and bucket order do not matter), costs eight 32-bit
 * additions per entity beside the two hashes (bucket and entry), and a kind's digest is the sum of
 * its bucket digests. It is preferred to XOR, as cheap, because XOR is linear over GF(2): two sets
 * with equal XOR are found by Gaussian elimination from about 257 chosen keys, and device names
 * are chosen by whoever provisions devices. Forging equal sums takes a generalized-birthday search instead
 * (far beyond reach at 256 bits). A sum also allows keeping the digest up to date per write later
 * instead of scanning.
 *
 * Tombstones are left out: each region purges them on its own schedule, so they differ between
 * regions that agree on every live entity.
 *
 * A digest and a bucket's entries name the keys of every kind, command-and-control documents
 * included (onboarding jobs, idempotency records, commands): digestRoutes serves them to peers
 * and admins only.
 */

/** Names the digest so that clients compare like with like. */
export const DIGEST_ALGORITHM = 'sha256-sum-mod-2^256';
/** Buckets per kind: the first byte of SHA-256(key). */
export const DIGEST_BUCKETS = 256;
/** Entities read per store page while computing a digest. */
export const DEFAULT_DIGEST_PAGE_SIZE = 2000;
/** Entries of a bucket returned per request, by default and at most. */
export const DEFAULT_BUCKET_LIMIT = 5000;
export const MAX_BUCKET_LIMIT = 20_000;

const WORDS = 8; // 256 bits as eight 32-bit words, most significant first
/** The digest of the empty set. */
export const EMPTY_DIGEST = '0'.repeat(64);

/** What a digest reads: the store's scan (all kinds) and list (one kind), both in key order. */
export type DigestSource = Pick<RegistryStore, 'scan' | 'list'>;

/** What the digest counts of one live entity. */
export interface DigestEntry {
  key: string;
  version: number;
  hlc: Hlc;
  origin: string;
}

export interface KindDigest {
  kind: string;
  /** Live entities of the kind. */
  count: number;
  /** Sum of the bucket digests: 64 hex characters. */
  digest: string;
  /** Digest per bucket, indexed by bucket number (0–255); EMPTY_DIGEST when the bucket is empty. */
  buckets: string[];
}

export interface RegionDigest {
  algorithm: typeof DIGEST_ALGORITHM;
  /** Every kind with at least one live entity, and every kind asked for, in kind order. */
  kinds: KindDigest[];
}

/** The bucket of a key: first byte of SHA-256(key), the same in every region for every version. */
export function bucketOf(key: string): number {
  return createHash('sha256').update(key).digest()[0] ?? 0;
}

/** SHA-256 of one entity's last write; JSON keeps the fields apart whatever the key contains. */
export function entryHash(kind: string, e: DigestEntry): Buffer {
  return createHash('sha256')
    .update(JSON.stringify([kind, e.key, e.version, e.hlc.wall, e.hlc.counter, e.origin]))
    .digest();
}

/** Adds a SHA-256 hash, read as a big-endian integer, into the sum at word `at`, modulo 2^256. */
function addHash(acc: Uint32Array, at: number, hash: Buffer): void {
  let carry = 0;
  for (let i = WORDS - 1; i >= 0; i--) {
    const sum = (acc[at + i] as number) + hash.readUInt32BE(4 * i) + carry;
    acc[at + i] = sum >>> 0;
    carry = sum > 0xffffffff ? 1 : 0;
  }
}

/** Adds the sum at word `from` of `src` into the sum at word `at` of `acc`, modulo 2^256. */
function addSum(acc: Uint32Array, at: number, src: Uint32Array, from: number): void {
  let carry = 0;
  for (let i = WORDS - 1; i >= 0; i--) {
    const sum = (acc[at + i] as number) + (src[from + i] as number) + carry;
    acc[at + i] = sum >>> 0;
    carry = sum > 0xffffffff ? 1 : 0;
  }
}

function hex(acc: Uint32Array, at: number): string {
  let out = '';
  for (let i = 0; i < WORDS; i++) out += (acc[at + i] ?? 0).toString(16).padStart(8, '0');
  return out;
}

/** Accumulates the digests of one kind: 256 bucket sums in one flat array. */
class KindAccumulator {
  count = 0;
  readonly sums = new Uint32Array(DIGEST_BUCKETS * WORDS);

  add(kind: string, e: DigestEntry): void {
    this.count++;
    addHash(this.sums, bucketOf(e.key) * WORDS, entryHash(kind, e));
  }

  result(kind: string): KindDigest {
    const total = new Uint32Array(WORDS);
    const buckets: string[] = [];
    for (let b = 0; b < DIGEST_BUCKETS; b++) {
      addSum(total, 0, this.sums, b * WORDS);
      buckets.push(hex(this.sums, b * WORDS));
    }
    return { kind, count: this.count, digest: hex(total, 0), buckets };
  }
}

/** The digest of a set of entries given directly (tests, and clients checking a bucket's listing). */
export function digestOf(kind: string, entries: Iterable<DigestEntry>): string {
  const acc = new Uint32Array(WORDS);
  for (const e of entries) addHash(acc, 0, entryHash(kind, e));
  return hex(acc, 0);
}

/**
 * Digests every live entity of the store, reading it in (kind, key) pages: memory holds one page
 * and 8 KiB of sums per kind, whatever the number of entities. Pages are separate reads, so a
 * write made meanwhile may or may not be counted; compare again to tell lag from divergence.
 */
export async function computeDigest(
  store: DigestSource,
  options: { pageSize?: number; kinds?: readonly string[]; signal?: AbortSignal } = {},
): Promise<RegionDigest> {
  const pageSize = options.pageSize ?? DEFAULT_DIGEST_PAGE_SIZE;
  const kinds = new Map<string, KindAccumulator>();
  for (const kind of options.kinds ?? []) kinds.set(kind, new KindAccumulator());
  let after: { kind: string; key: string } | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const page = await store.scan({ limit: pageSize, ...(after ? { after } : {}) });
    for (const e of page) {
      let acc = kinds.get(e.kind);
      if (!acc) {
        acc = new KindAccumulator();
        kinds.set(e.kind, acc);
      }
      acc.add(e.kind, e);
    }
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) break;
    after = { kind: last.kind, key: last.key };
  }
  const sorted = [...kinds.keys()].sort();
  return {
    algorithm: DIGEST_ALGORITHM,
    kinds: sorted.map((kind) => (kinds.get(kind) as KindAccumulator).result(kind)),
  };
}

export interface BucketEntry extends DigestEntry {
  bucket: number;
}

export interface BucketPage {
  /** Entries of the buckets asked for, in key order. */
  entries: BucketEntry[];
  /** Pass as `after` for the rest; absent on the last page. */
  next?: string;
}

/**
 * The live entries of some buckets of a kind, in key order, after `after`. Reads the kind in key
 * pages and keeps the buckets asked for, so a client that asks for every differing bucket at once
 * and pages on reads the kind once in all, however many buckets differ.
 */
export async function bucketEntries(
  store: DigestSource,
  kind: string,
  buckets: readonly number[],
  options: { after?: string; limit?: number; pageSize?: number } = {},
): Promise<BucketPage> {
  const wanted = new Set(buckets);
  const limit = options.limit ?? DEFAULT_BUCKET_LIMIT;
  const pageSize = options.pageSize ?? DEFAULT_DIGEST_PAGE_SIZE;
  const entries: BucketEntry[] = [];
  let after = options.after;
  // One entry past the limit says whether another page follows.
  while (entries.length <= limit) {
    const page = await store.list(kind, { limit: pageSize, ...(after === undefined ? {} : { after }) });
    for (const e of page) {
      const bucket = bucketOf(e.key);
      if (wanted.has(bucket)) {
        entries.push({ key: e.key, bucket, version: e.version, hlc: e.hlc, origin: e.origin });
        if (entries.length > limit) break;
      }
    }
    if (page.length < pageSize) break;
    after = page[page.length - 1]?.key;
  }
  if (entries.length <= limit) return { entries };
  entries.length = limit;
  return { entries, next: (entries[limit - 1] as BucketEntry).key };
}

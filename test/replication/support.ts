/**
 * What the replication fault tests share: running one scenario on both stores, bulk writes over
 * HTTP, and comparing the full entity sets of regions.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import type { EntityRecord } from '../../src/registry/index.js';
import { type Cluster, type ClusterRegion, type Engine, eventually } from '../harness/cluster.js';
import { postgresSkipReason, type RunningPostgres, startPostgres } from '../harness/postgres.js';

/**
 * Defines the same tests twice: on SQLite, and on a throwaway PostgreSQL (one per describe block,
 * each cluster in its own schemas). Without PostgreSQL the second block is skipped with a warning;
 * with CI=true that is an error (postgresSkipReason throws).
 */
export function onEachEngine(title: string, define: (engine: () => Engine) => void): void {
  describe(`${title} (SQLite)`, () => define(() => ({ engine: 'sqlite' })));
  const skip = postgresSkipReason();
  if (skip !== undefined) console.warn(`skipping "${title}" on PostgreSQL: ${skip}`);
  (skip === undefined ? describe : describe.skip)(`${title} (PostgreSQL)`, () => {
    let pg: RunningPostgres | undefined;
    beforeAll(async () => {
      const started = await startPostgres();
      if ('skipped' in started) throw new Error(started.skipped);
      pg = started;
    });
    afterAll(async () => {
      await pg?.stop();
    });
    define(() => {
      if (!pg) throw new Error('PostgreSQL is not running');
      return { engine: 'postgres', url: pg.url };
    });
  });
}

/** The region, or a clear failure when the cluster has no such region. */
export function regionOf(c: Cluster, name: string): ClusterRegion {
  const region = c.regions[name];
  if (!region) throw new Error(`no region ${name} in the cluster`);
  return region;
}

/** The running region's replication, which only exists while it runs. */
export function running(region: ClusterRegion) {
  if (!region.running) throw new Error(`region ${region.name} is not running`);
  return region.running;
}

/**
 * Waits until every link of every region has copied its first snapshot and tails the feed: from
 * then on each change arrives as itself (same id), not inside a snapshot copy.
 */
export async function allTailing(regions: readonly ClusterRegion[]): Promise<void> {
  await eventually(
    async () =>
      regions.every((r) =>
        [...running(r).replication.links.values()].every((l) => l.status().state.type === 'tailing'),
      ),
    'every link tailing',
  );
}

/** Runs `work` over `items` with at most `concurrency` in flight, in item order per worker. */
export async function inParallel<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) await work(items[i] as T, i);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** PUTs things by name (admin token), 16 in flight; every answer must be 200 or 201. */
export async function putThings(
  region: ClusterRegion,
  names: readonly string[],
  attributes: (name: string, index: number) => Record<string, string> = () => ({}),
  concurrency = 16,
): Promise<void> {
  await inParallel(names, concurrency, async (name, i) => {
    const res = await region.call('PUT', `/v1/things/${name}`, { attributes: attributes(name, i) });
    if (res.status !== 200 && res.status !== 201) {
      throw new Error(`PUT ${name} in ${region.name}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  });
}

export const names = (prefix: string, n: number, from = 0): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}-${from + i}`);

/** JSON with object keys sorted at every level (PostgreSQL's JSONB does not keep key order). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

/** What must be identical in every region: everything of an entity but the local write time. */
export function entityView(e: EntityRecord): string {
  return canonicalJson({
    ref: e.ref,
    doc: e.doc,
    version: e.version,
    hlc: e.hlc,
    origin: e.origin,
    deleted: e.deleted,
  });
}

/** Every entity of the region's store, tombstones included, keyed `kind|key`. */
export async function entitiesOf(region: ClusterRegion): Promise<Map<string, string>> {
  const store = running(region).service.store;
  const out = new Map<string, string>();
  let after: { kind: string; key: string } | undefined;
  for (;;) {
    const page = await store.scan({ limit: 2000, includeDeleted: true, ...(after ? { after } : {}) });
    for (const e of page) out.set(`${e.kind}|${e.key}`, entityView(e));
    const last = page[page.length - 1];
    if (page.length < 2000 || !last) return out;
    after = { kind: last.kind, key: last.key };
  }
}

/** The first few differences between two entity sets, for a readable failure. */
export function differences(a: Map<string, string>, b: Map<string, string>, limit = 5): string[] {
  const out: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) !== b.get(key))
      out.push(`${key}: ${a.get(key) ?? '(absent)'} ≠ ${b.get(key) ?? '(absent)'}`);
    if (out.length >= limit) break;
  }
  return out;
}

/**
 * Waits until every region holds exactly the same entities (doc, version, HLC, origin, tombstones),
 * then returns that set. Once writes stop, equality means convergence: a change in flight already
 * exists at its origin, so the sets differ until it is applied everywhere.
 */
export async function converged(
  regions: readonly ClusterRegion[],
  timeoutMs = 30_000,
): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    const sets = await Promise.all(regions.map(entitiesOf));
    const first = sets[0] ?? new Map<string, string>();
    last = [];
    for (const [i, set] of sets.entries()) {
      if (i === 0) continue;
      const diff = differences(first, set);
      if (diff.length > 0) last.push(`${regions[0]?.name} vs ${regions[i]?.name}:\n  ${diff.join('\n  ')}`);
    }
    if (last.length === 0) return first;
    if (Date.now() > deadline) throw new Error(`regions did not converge:\n${last.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface LoggedChange {
  seq: number;
  id: string;
  kind: string;
  key: string;
  version: number;
  op: string;
  origin: string;
  hlc: { wall: number; counter: number };
}

/** A region's whole change log over HTTP (admin token), optionally of one origin. */
export async function changeLog(
  call: (path: string) => Promise<{ status: number; body: any }>,
  origin?: string,
): Promise<LoggedChange[]> {
  const out: LoggedChange[] = [];
  for (let after = 0; ; ) {
    const q = `after=${after}&limit=10000${origin === undefined ? '' : `&origin=${origin}`}`;
    const res = await call(`/v1/changes?${q}`);
    if (res.status !== 200) throw new Error(`GET /v1/changes: ${res.status} ${JSON.stringify(res.body)}`);
    const page = res.body as { changes: LoggedChange[]; scannedTo: number };
    out.push(...page.changes);
    if (page.changes.length === 0) return out;
    after = page.changes[page.changes.length - 1]?.seq ?? after;
  }
}

/** Ids that occur more than once. */
export function duplicates(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const id of ids) (seen.has(id) ? twice : seen).add(id);
  return [...twice];
}

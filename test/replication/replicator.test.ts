import { describe, expect, it } from 'vitest';
import type { ChangeRecord, EntityRecord } from '../../src/registry/index.js';
import {
  type ApplyTarget,
  type BatchResult,
  type ChangeFeed,
  type ChangeOutcome,
  type DeadLetter,
  type FeedPage,
  type LinkProgress,
  Replicator,
  type SnapshotPage,
  wins,
} from '../../src/replication/index.js';
import { eventually } from '../harness/cluster.js';

/** A target kept in memory: shows that nothing in the replicator assumes SQL. */
class MemoryTarget implements ApplyTarget {
  readonly name = 'memory';
  readonly entities = new Map<
    string,
    { hlc: ChangeRecord['hlc']; origin: string; deleted: boolean; doc: unknown }
  >();
  progressOf: LinkProgress = { cursor: 0, bootstrapped: false };
  snapshotPages = 0;

  async progress(): Promise<LinkProgress> {
    return structuredClone(this.progressOf);
  }
  #apply(c: {
    kind: string;
    key: string;
    hlc: ChangeRecord['hlc'];
    origin: string;
    deleted: boolean;
    doc: unknown;
  }) {
    const id = `${c.kind}|${c.key}`;
    const current = this.entities.get(id);
    if (!wins(c, current)) return 'stale' as const;
    this.entities.set(id, { hlc: c.hlc, origin: c.origin, deleted: c.deleted, doc: c.doc });
    return 'applied' as const;
  }
  async applyChanges(_peer: string, changes: ChangeRecord[], cursor: number): Promise<BatchResult> {
    const outcomes: ChangeOutcome[] = changes.map((c) =>
      this.#apply({ ...c, deleted: c.op === 'delete', doc: c.after }),
    );
    this.progressOf = { ...this.progressOf, cursor };
    return { outcomes };
  }
  async advance(_peer: string, cursor: number): Promise<void> {
    this.progressOf = { ...this.progressOf, cursor: Math.max(cursor, this.progressOf.cursor) };
  }
  async beginBootstrap(_peer: string, watermark: number): Promise<void> {
    this.progressOf = { ...this.progressOf, bootstrap: { watermark, after: null, copied: 0, startedAt: 0 } };
  }
  async applySnapshot(
    _peer: string,
    entities: EntityRecord[],
    next: { kind: string; key: string } | null,
  ): Promise<BatchResult> {
    this.snapshotPages += 1;
    const b = this.progressOf.bootstrap;
    if (!b) throw new Error('no bootstrap');
    const outcomes: ChangeOutcome[] = entities.map((e) => this.#apply(e));
    this.progressOf =
      next === null
        ? { cursor: Math.max(this.progressOf.cursor, b.watermark), bootstrapped: true }
        : { ...this.progressOf, bootstrap: { ...b, after: next, copied: b.copied + entities.length } };
    return { outcomes };
  }
  async deadLetters(): Promise<DeadLetter[]> {
    return [];
  }
  async retryDeadLetter(): Promise<ChangeOutcome> {
    return 'stale';
  }
  async discardDeadLetter(): Promise<void> {}
}

function change(seq: number, key: string, wall: number, origin = 'peer'): ChangeRecord {
  return {
    seq,
    id: `id-${seq}`,
    kind: 'thing',
    key,
    op: 'upsert',
    ref: null,
    after: { thingName: key, seq },
    version: seq,
    hlc: { wall, counter: 0 },
    origin,
    committedAt: wall,
  };
}

function entity(key: string, wall: number): EntityRecord {
  return {
    kind: 'thing',
    key,
    ref: null,
    doc: { thingName: key },
    version: 1,
    hlc: { wall, counter: 0 },
    origin: 'peer',
    deleted: false,
    updatedAt: wall,
  };
}

/** A peer whose log and snapshot are arrays; it can be made to fail. */
class FakeFeed implements ChangeFeed {
  log: ChangeRecord[] = [];
  snapshotEntities: EntityRecord[] = [];
  firstSeq = 1;
  /** The log's last seq when the snapshot was read (default: the end of the log). */
  snapshotLastSeq: number | undefined;
  failures = 0;
  pulls = 0;
  snapshotAfters: Array<string | undefined> = [];

  async pull(options: { after: number; limit: number }): Promise<FeedPage> {
    this.pulls += 1;
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('peer unreachable');
    }
    const lastSeq = this.log[this.log.length - 1]?.seq ?? 0;
    const changes = this.log
      .filter((c) => c.seq > options.after && c.origin === 'peer')
      .slice(0, options.limit);
    const last = changes[changes.length - 1]?.seq ?? options.after;
    return {
      changes,
      lastSeq,
      firstSeq: this.firstSeq,
      scannedTo: changes.length < options.limit ? Math.max(lastSeq, options.after) : last,
      remaining: this.log.filter((c) => c.seq > last && c.origin === 'peer').length,
    };
  }

  async snapshot(options: { after?: { kind: string; key: string }; limit: number }): Promise<SnapshotPage> {
    this.snapshotAfters.push(options.after?.key);
    const rest = this.snapshotEntities.filter((e) => !options.after || e.key > options.after.key);
    const page = rest.slice(0, options.limit);
    const last = page[page.length - 1];
    const lastSeq = this.snapshotLastSeq ?? this.log[this.log.length - 1]?.seq ?? 0;
    return rest.length > options.limit && last
      ? { entities: page, lastSeq, next: { kind: last.kind, key: last.key } }
      : { entities: page, lastSeq };
  }
}

const fast = { waitMs: 0, sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 5))) };

describe('Replicator', () => {
  it('copies a snapshot first, in pages, then tails from its watermark', async () => {
    const feed = new FakeFeed();
    feed.snapshotEntities = ['a', 'b', 'c', 'd', 'e'].map((k) => entity(k, 10));
    // The snapshot was read when the log ended at 1; x and y came after it.
    feed.log = [change(1, 'a', 5), change(2, 'x', 11), change(3, 'y', 12)];
    feed.snapshotLastSeq = 1;
    const target = new MemoryTarget();
    const link = new Replicator({ peer: 'peer', feed, target, snapshotPageSize: 2, ...fast });
    link.start();
    await eventually(() => target.progressOf.cursor === 3 && target.entities.has('thing|y'), 'caught up');
    await link.stop();
    expect(target.snapshotPages).toBe(3);
    expect(feed.snapshotAfters).toEqual([undefined, 'b', 'd']);
    // Change 1 is within the snapshot's watermark: it is not pulled again.
    expect(target.entities.get('thing|a')?.hlc.wall).toBe(10);
    expect([...target.entities.keys()].sort()).toEqual(
      ['a', 'b', 'c', 'd', 'e', 'x', 'y'].map((k) => `thing|${k}`),
    );
    expect(link.status()).toMatchObject({ state: { type: 'stopped' }, cursor: 3, applied: 7, stale: 0 });
  });

  it('resumes an interrupted copy after the last page it applied', async () => {
    const feed = new FakeFeed();
    feed.snapshotEntities = ['a', 'b', 'c', 'd'].map((k) => entity(k, 10));
    const target = new MemoryTarget();
    target.progressOf = {
      cursor: 0,
      bootstrapped: false,
      bootstrap: { watermark: 0, after: { kind: 'thing', key: 'b' }, copied: 2, startedAt: 0 },
    };
    const link = new Replicator({ peer: 'peer', feed, target, snapshotPageSize: 10, ...fast });
    link.start();
    await eventually(() => target.progressOf.bootstrapped, 'copy done');
    await link.stop();
    expect(feed.snapshotAfters).toEqual(['b']);
    expect([...target.entities.keys()].sort()).toEqual(['thing|c', 'thing|d']);
  });

  it('copies a snapshot again when the peer pruned changes the link has not seen', async () => {
    const feed = new FakeFeed();
    feed.log = [change(7, 'late', 20)];
    feed.firstSeq = 7;
    feed.snapshotEntities = [entity('early', 15), entity('late', 20)];
    const target = new MemoryTarget();
    target.progressOf = { cursor: 2, bootstrapped: true };
    const link = new Replicator({ peer: 'peer', feed, target, ...fast });
    link.start();
    await eventually(() => target.progressOf.cursor === 7 && target.progressOf.bootstrapped, 'copied again');
    await link.stop();
    expect(target.entities.has('thing|early')).toBe(true);
    expect(target.progressOf.cursor).toBe(7);
  });

  it('moves the cursor over changes of other origins without applying them', async () => {
    const feed = new FakeFeed();
    feed.log = [change(1, 'mine', 1, 'elsewhere'), change(2, 'other', 2, 'elsewhere')];
    const target = new MemoryTarget();
    target.progressOf = { cursor: 0, bootstrapped: true };
    const link = new Replicator({ peer: 'peer', feed, target, ...fast });
    link.start();
    await eventually(() => target.progressOf.cursor === 2, 'cursor advanced');
    await link.stop();
    expect(target.entities.size).toBe(0);
  });

  it('retries a failing peer with capped exponential backoff, full jitter, and reports it', async () => {
    const feed = new FakeFeed();
    feed.failures = 6;
    feed.log = [change(1, 'after-outage', 1)];
    const target = new MemoryTarget();
    target.progressOf = { cursor: 0, bootstrapped: true };
    const delays: number[] = [];
    const link = new Replicator({
      peer: 'peer',
      feed,
      target,
      waitMs: 0,
      retryBaseMs: 100,
      retryMaxMs: 1000,
      random: () => 1,
      sleep: async (ms) => {
        delays.push(ms);
      },
    });
    const states: string[] = [];
    link.on('state', (s) => states.push(s.type));
    link.start();
    await eventually(() => target.entities.has('thing|after-outage'), 'recovered');
    await link.stop();
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(states).toContain('retrying');
    expect(link.status().lastError).toBeNull();
    expect(link.status().applied).toBe(1);
  });

  it('reports the last error while the peer stays down', async () => {
    const feed = new FakeFeed();
    feed.failures = 1_000_000;
    const target = new MemoryTarget();
    target.progressOf = { cursor: 0, bootstrapped: true };
    const link = new Replicator({ peer: 'peer', feed, target, ...fast });
    link.start();
    await eventually(() => feed.pulls >= 3, 'a few attempts');
    const status = link.status();
    await link.stop();
    expect(status.state.type).toBe('retrying');
    expect(status.lastError?.message).toBe('peer unreachable');
  });
});

import { EventEmitter } from 'node:events';
import { type Clock, systemClock } from '../common/index.js';
import type { ChangeRecord } from '../registry/index.js';
import {
  DEFAULT_BATCH_SIZE,
  DEFAULT_RETRY_BASE_MS,
  DEFAULT_RETRY_MAX_MS,
  DEFAULT_SNAPSHOT_PAGE_SIZE,
  DEFAULT_WAIT_MS,
} from './config.js';
import type { ApplyTarget, ChangeFeed, ChangeOutcome, LinkProgress, LinkState, LinkStatus } from './types.js';

export interface ReplicatorOptions {
  /** The peer region whose own changes this link pulls. */
  peer: string;
  feed: ChangeFeed;
  target: ApplyTarget;
  /** Changes per pull (default 1000). */
  batchSize?: number;
  /** How long a pull waits for the peer's next change, in ms (default 10000). */
  waitMs?: number;
  /** Entities per snapshot page (default 1000). */
  snapshotPageSize?: number;
  /** First retry delay after a failure, in ms (default 100); doubles per failure, full jitter. */
  retryBaseMs?: number;
  /** Longest retry delay, in ms (default 5000). The link retries for as long as it runs. */
  retryMaxMs?: number;
  clock?: Clock;
  /** Waits `ms` or until `signal` aborts (injected in tests). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
}

export interface AppliedEvent {
  peer: string;
  changes: ChangeRecord[];
  outcomes: ChangeOutcome[];
  /** Origin commit → applied, per applied change (ms). */
  lagsMs: number[];
}

interface Events {
  applied: [AppliedEvent];
  failure: [{ peer: string; error: Error; attempt: number }];
  state: [LinkState];
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * One replication link: pulls the peer's own changes from its change feed and applies them to a
 * target, which commits the cursor with them, so a restart resumes exactly. A new link, or one
 * whose cursor fell behind the peer's retained log, first copies a snapshot and tails from its
 * watermark; an interrupted copy resumes where it stopped. Failures are retried with capped
 * exponential backoff and full jitter for as long as the link runs; nothing is skipped.
 */
export class Replicator extends EventEmitter<Events> {
  readonly peer: string;
  readonly #feed: ChangeFeed;
  readonly #target: ApplyTarget;
  readonly #batchSize: number;
  readonly #waitMs: number;
  readonly #pageSize: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #clock: Clock;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #random: () => number;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #status: LinkStatus;

  constructor(options: ReplicatorOptions) {
    super();
    this.peer = options.peer;
    this.#feed = options.feed;
    this.#target = options.target;
    this.#batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    this.#waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
    this.#pageSize = options.snapshotPageSize ?? DEFAULT_SNAPSHOT_PAGE_SIZE;
    this.#retryBaseMs = options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.#retryMaxMs = options.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
    this.#clock = options.clock ?? systemClock;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
    this.#status = {
      peer: options.peer,
      target: options.target.name,
      state: { type: 'stopped' },
      cursor: 0,
      peerLastSeq: null,
      lagChanges: null,
      lagMs: null,
      lastAppliedAt: null,
      lastContactAt: null,
      lastError: null,
      applied: 0,
      stale: 0,
      deadLetters: 0,
    };
  }

  /** A copy of the link's status. */
  status(): LinkStatus {
    return structuredClone(this.#status);
  }

  start(): void {
    if (this.#loop) return;
    this.#abort = new AbortController();
    this.#setState({ type: 'starting' });
    this.#loop = this.#run();
  }

  /** Stops pulling; resolves once the batch in flight, if any, is committed or abandoned. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    this.#loop = undefined;
    this.#setState({ type: 'stopped' });
  }

  #setState(state: LinkState): void {
    this.#status.state = state;
    this.emit('state', state);
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      try {
        await this.#step(signal);
        attempt = 0;
        // A feed that answers without I/O (or a peer with nothing new and no long poll) must not
        // starve the event loop.
        await new Promise((resolve) => setImmediate(resolve));
      } catch (error) {
        if (signal.aborted) break;
        attempt += 1;
        const err = error instanceof Error ? error : new Error(String(error));
        const delay = this.#random() * Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** (attempt - 1));
        this.#status.lastError = { message: err.message, at: this.#clock.now() };
        this.#setState({ type: 'retrying', attempt, nextAttemptAt: this.#clock.now() + delay });
        this.emit('failure', { peer: this.peer, error: err, attempt });
        await this.#sleep(delay, signal);
      }
    }
  }

  async #step(signal: AbortSignal): Promise<void> {
    const progress = await this.#target.progress(this.peer);
    this.#status.cursor = progress.cursor;
    if (progress.bootstrap || (!progress.bootstrapped && progress.cursor === 0)) {
      await this.#bootstrap(progress, signal);
      return;
    }
    await this.#tail(progress.cursor, signal);
  }

  async #tail(cursor: number, signal: AbortSignal): Promise<void> {
    const page = await this.#feed.pull({
      after: cursor,
      limit: this.#batchSize,
      waitMs: this.#waitMs,
      signal,
    });
    // Only an answered pull makes the link `tailing`: a peer that is down keeps it `retrying`.
    if (this.#status.state.type !== 'tailing') this.#setState({ type: 'tailing' });
    const now = this.#clock.now();
    this.#status.lastContactAt = now;
    this.#status.lastError = null;
    this.#status.peerLastSeq = page.lastSeq;
    this.#status.lagChanges = page.remaining;
    if (page.firstSeq > 0 && cursor + 1 < page.firstSeq) {
      // The peer pruned changes this link has not seen: copy a snapshot instead.
      await this.#target.beginBootstrap(this.peer, page.lastSeq);
      return;
    }
    if (page.changes.length === 0) {
      if (page.scannedTo > cursor) {
        await this.#target.advance(this.peer, page.scannedTo);
        this.#status.cursor = page.scannedTo;
      }
      return;
    }
    const last = page.changes[page.changes.length - 1]?.seq ?? cursor;
    const next = Math.max(last, page.changes.length < this.#batchSize ? page.scannedTo : last);
    const result = await this.#target.applyChanges(this.peer, page.changes, next);
    this.#record(page.changes, result.outcomes);
    this.#status.cursor = next;
  }

  #record(changes: ChangeRecord[], outcomes: ChangeOutcome[]): void {
    const now = this.#clock.now();
    const lagsMs: number[] = [];
    outcomes.forEach((outcome, i) => {
      const change = changes[i];
      if (outcome === 'applied') {
        this.#status.applied += 1;
        if (change && change.seq > 0) lagsMs.push(Math.max(0, now - change.committedAt));
      } else if (outcome === 'stale') this.#status.stale += 1;
      else this.#status.deadLetters += 1;
    });
    if (lagsMs.length > 0) {
      this.#status.lagMs = lagsMs[lagsMs.length - 1] ?? null;
      this.#status.lastAppliedAt = now;
    }
    this.emit('applied', { peer: this.peer, changes, outcomes, lagsMs });
  }

  async #bootstrap(progress: LinkProgress, signal: AbortSignal): Promise<void> {
    let state = progress.bootstrap;
    let after = state?.after ?? undefined;
    if (!state) {
      // The watermark is the peer's last seq when its first page was read: everything the peer
      // commits from then on comes again through the feed, and last writer wins keeps it right.
      const first = await this.#feed.snapshot({ limit: this.#pageSize, signal });
      await this.#target.beginBootstrap(this.peer, first.lastSeq);
      state = { watermark: first.lastSeq, after: null, copied: 0, startedAt: this.#clock.now() };
      this.#setState({ type: 'bootstrapping', copied: 0, watermark: first.lastSeq });
      const result = await this.#target.applySnapshot(this.peer, first.entities, first.next ?? null);
      this.#recordSnapshot(result.outcomes);
      state.copied += first.entities.length;
      if (!first.next) return;
      after = first.next;
    }
    while (!signal.aborted) {
      this.#setState({ type: 'bootstrapping', copied: state.copied, watermark: state.watermark });
      const page = await this.#feed.snapshot({ limit: this.#pageSize, signal, ...(after ? { after } : {}) });
      this.#status.lastContactAt = this.#clock.now();
      const result = await this.#target.applySnapshot(this.peer, page.entities, page.next ?? null);
      this.#recordSnapshot(result.outcomes);
      state.copied += page.entities.length;
      if (!page.next) return;
      after = page.next;
    }
  }

  #recordSnapshot(outcomes: ChangeOutcome[]): void {
    for (const o of outcomes) {
      if (o === 'applied') this.#status.applied += 1;
      else if (o === 'stale') this.#status.stale += 1;
      else this.#status.deadLetters += 1;
    }
  }
}

import { StoreError } from '../../common/index.js';
import type {
  ChangeRecord,
  CountOptions,
  Doc,
  EntityRecord,
  ListOptions,
  LocalRecord,
  Mutation,
  ScanOptions,
  StoreTx,
} from './types.js';

/** The statements a group committer needs from one connection; each engine supplies its own. */
export interface TxControl {
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  savepoint(name: string): Promise<void>;
  release(name: string): Promise<void>;
  rollbackTo(name: string): Promise<void>;
}

/**
 * How one caller's failure is kept from the others in its batch.
 * - `savepoint`: every caller runs in a savepoint, rolled back if it fails. Right where a
 *   statement costs no round trip (SQLite).
 * - `rerun`: no savepoints. A caller that fails before writing anything leaves nothing to undo; one
 *   that fails after writing, or whose statement failed, aborts the batch, which is rolled back and
 *   run again without it. Saves two round trips per write where each costs one (PostgreSQL).
 */
export type BatchIsolation = 'savepoint' | 'rerun';

export interface GroupCommitterOptions {
  /** Most transactions folded into one commit (default 256). */
  maxBatch?: number;
  /** Default 'savepoint'. */
  isolation?: BatchIsolation;
}

interface Pending {
  fn: (tx: StoreTx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Notes whether a caller wrote anything and whether one of its statements failed. */
class TrackingTx implements StoreTx {
  wrote = false;
  failed = false;
  readonly #tx: StoreTx;

  constructor(tx: StoreTx) {
    this.#tx = tx;
  }

  async #track<T>(op: Promise<T>): Promise<T> {
    try {
      return await op;
    } catch (error) {
      this.failed = true;
      throw error;
    }
  }

  get(kind: string, key: string, options?: { includeDeleted?: boolean }): Promise<EntityRecord | undefined> {
    return this.#track(this.#tx.get(kind, key, options));
  }

  list(kind: string, options: ListOptions): Promise<EntityRecord[]> {
    return this.#track(this.#tx.list(kind, options));
  }

  count(kind: string, options?: CountOptions): Promise<number> {
    return this.#track(this.#tx.count(kind, options));
  }

  scan(options: ScanOptions): Promise<EntityRecord[]> {
    return this.#track(this.#tx.scan(options));
  }

  getLocal(key: string): Promise<Doc | undefined> {
    return this.#track(this.#tx.getLocal(key));
  }

  listLocal(prefix: string, options: { after?: string; limit: number }): Promise<LocalRecord[]> {
    return this.#track(this.#tx.listLocal(prefix, options));
  }

  apply(mutation: Mutation): Promise<ChangeRecord> {
    this.wrote = true;
    return this.#track(this.#tx.apply(mutation));
  }

  putLocal(key: string, value: Doc | null, at: number): Promise<void> {
    this.wrote = true;
    return this.#track(this.#tx.putLocal(key, value, at));
  }
}

/**
 * Runs write transactions one at a time on a single connection, folding the ones that queue up
 * while a commit is in flight into one database transaction (group commit). One caller's failure
 * undoes only its own writes (see BatchIsolation); every caller is answered only after the shared
 * COMMIT returned, so an acknowledged write is durable. Change seqs stay gap-free in commit order
 * because a single writer assigns them.
 *
 * A caller's function may run more than once (isolation 'rerun'), so it must have no effect
 * outside its transaction.
 */
export class GroupCommitter {
  readonly #control: TxControl;
  readonly #tx: StoreTx;
  readonly #maxBatch: number;
  readonly #isolation: BatchIsolation;
  #queue: Pending[] = [];
  #running = false;

  constructor(control: TxControl, tx: StoreTx, options: GroupCommitterOptions = {}) {
    this.#control = control;
    this.#tx = tx;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#isolation = options.isolation ?? 'savepoint';
  }

  run<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#running) void this.#drain();
    });
  }

  /** Resolves once nothing is queued or running. */
  async idle(): Promise<void> {
    while (this.#running || this.#queue.length > 0) {
      await new Promise((r) => setImmediate(r));
    }
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        // Let the event loop read the requests that are already waiting, so they join this batch:
        // an engine whose calls block (SQLite) would otherwise commit every request on its own.
        await new Promise((resolve) => setImmediate(resolve));
        const batch = this.#queue.splice(0, this.#maxBatch);
        await this.#runBatch(batch);
      }
    } finally {
      this.#running = false;
    }
  }

  async #runBatch(batch: Pending[]): Promise<void> {
    const c = this.#control;
    try {
      await c.begin();
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    let outcomes: Outcome[];
    try {
      const ran =
        this.#isolation === 'rerun' ? await this.#runOptimistic(batch) : await this.#runInSavepoints(batch);
      if (ran === undefined) return; // rolled back; the others are queued again
      outcomes = ran;
      if (batch.length === 1 && outcomes[0] && !outcomes[0].ok) await c.rollback();
      else await c.commit();
    } catch (error) {
      // The connection failed (disk full, server gone): nothing of this batch is committed.
      try {
        await c.rollback();
      } catch {
        // The transaction may already be gone with the connection.
      }
      for (const p of batch) p.reject(error);
      return;
    }
    batch.forEach((p, i) => {
      const o = outcomes[i];
      if (o?.ok) p.resolve(o.value);
      else p.reject(o?.error);
    });
  }

  async #runInSavepoints(batch: Pending[]): Promise<Outcome[]> {
    const c = this.#control;
    const outcomes: Outcome[] = [];
    for (const p of batch) {
      if (batch.length === 1) {
        try {
          outcomes.push({ ok: true, value: await p.fn(this.#tx) });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
        continue;
      }
      await c.savepoint('iotdr_tx');
      try {
        const value = await p.fn(this.#tx);
        await c.release('iotdr_tx');
        outcomes.push({ ok: true, value });
      } catch (error) {
        await c.rollbackTo('iotdr_tx');
        await c.release('iotdr_tx');
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes;
  }

  /**
   * Runs the batch without savepoints. Returns undefined when a caller left the transaction in a
   * state only a rollback undoes: then it is rejected alone, and the rest go back to the head of
   * the queue in their order, to run again in a fresh transaction.
   */
  async #runOptimistic(batch: Pending[]): Promise<Outcome[] | undefined> {
    const outcomes: Outcome[] = [];
    for (const [i, p] of batch.entries()) {
      const tx = new TrackingTx(this.#tx);
      let outcome: Outcome;
      try {
        outcome = { ok: true, value: await p.fn(tx) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      if (!tx.failed && (outcome.ok || !tx.wrote)) {
        outcomes.push(outcome);
        continue;
      }
      await this.#control.rollback();
      p.reject(
        outcome.ok
          ? new StoreError(
              'IOTDR_STORE_TX_ABORTED',
              'a statement of the transaction failed; nothing was written',
            )
          : outcome.error,
      );
      this.#queue.unshift(...batch.slice(0, i), ...batch.slice(i + 1));
      return undefined;
    }
    return outcomes;
  }
}

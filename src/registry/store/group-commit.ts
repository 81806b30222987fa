import type { StoreTx } from './types.js';

/** The statements a group committer needs from one connection; each engine supplies its own. */
export interface TxControl {
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  savepoint(name: string): Promise<void>;
  release(name: string): Promise<void>;
  rollbackTo(name: string): Promise<void>;
}

interface Pending {
  fn: (tx: StoreTx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Runs write transactions one at a time on a single connection, folding the ones that queue up
 * while a commit is in flight into one database transaction (group commit). Each caller's
 * function runs in its own savepoint, so one caller's failure undoes only its own writes; every
 * caller is answered only after the shared COMMIT returned, so an acknowledged write is durable.
 * Change seqs stay gap-free in commit order because a single writer assigns them.
 */
export class GroupCommitter {
  readonly #control: TxControl;
  readonly #tx: StoreTx;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #running = false;

  /** @param maxBatch most transactions folded into one commit (default 256). */
  constructor(control: TxControl, tx: StoreTx, maxBatch = 256) {
    this.#control = control;
    this.#tx = tx;
    this.#maxBatch = maxBatch;
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
    const single = batch.length === 1;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      for (const p of batch) {
        if (single) {
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
      if (single && outcomes[0] && !outcomes[0].ok) {
        await c.rollback();
      } else {
        await c.commit();
      }
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
}

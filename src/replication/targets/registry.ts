import { randomUUID } from 'node:crypto';
import {
  type ChangeRecord,
  compareHlc,
  type EntityProblem,
  type EntityRecord,
  type Hlc,
  KIND,
  type RegistryService,
  tombstoneProblem,
  type WriteTx,
} from '../../registry/index.js';
import { stampOf, wins } from '../conflict.js';
import { deadLetterNotFound } from '../errors.js';
import type { ApplyTarget, BatchResult, ChangeOutcome, DeadLetter, LinkProgress } from '../types.js';

/** Why a change is refused: the registry's verdict on its document, or replication's on its origin. */
type LetterProblem =
  | EntityProblem
  | { code: 'IOTDR_REPLICATION_FOREIGN_ORIGIN' | 'IOTDR_REPLICATION_GRANT_REFUSED'; reason: string };

/** Local-state keys of a link: its progress and its dead letters. */
const progressKey = (peer: string) => `replication/${peer}/progress`;
const deadPrefix = (peer: string) => `replication/${peer}/dead/`;
const deadKey = (peer: string, id: string) => `${deadPrefix(peer)}${id}`;
/** Seqs padded so dead letters list in seq order. */
const seqId = (seq: number) => String(seq).padStart(16, '0');

const EMPTY: LinkProgress = { cursor: 0, bootstrapped: false };

function asProgress(value: Record<string, unknown> | undefined): LinkProgress {
  return value ? (value as unknown as LinkProgress) : { ...EMPTY };
}

function entityAsChange(e: EntityRecord): ChangeRecord {
  return {
    seq: 0,
    id: randomUUID(),
    kind: e.kind,
    key: e.key,
    op: e.deleted ? 'delete' : 'upsert',
    ref: e.ref,
    after: e.doc,
    version: e.version,
    hlc: e.hlc,
    origin: e.origin,
    committedAt: e.updatedAt,
  };
}

/**
 * The local iotdr registry as an apply target. Every batch is one store transaction: the changes
 * that win (conflict.ts: a revocation first, then the later HLC, then origin), the dead letters,
 * and the link's progress.
 * Applied changes keep their id, HLC, version and origin, and get a change record here like any
 * write, so the local change log stays complete.
 */
export interface RegistryTargetOptions {
  /**
   * Regions whose changes to tokens (people's credentials and their roles) this region applies;
   * undefined: every peer. A token change of another origin is dead-lettered.
   */
  tokensFrom?: readonly string[];
}

export class RegistryTarget implements ApplyTarget {
  readonly name = 'iotdr-registry';
  readonly #service: RegistryService;
  readonly #tokensFrom: ReadonlySet<string> | undefined;

  constructor(service: RegistryService, options: RegistryTargetOptions = {}) {
    this.#service = service;
    this.#tokensFrom = options.tokensFrom === undefined ? undefined : new Set(options.tokensFrom);
  }

  async progress(peer: string): Promise<LinkProgress> {
    return asProgress(await this.#service.store.getLocal(progressKey(peer)));
  }

  async #apply(tx: WriteTx, change: ChangeRecord): Promise<'applied' | 'stale'> {
    // Before the write, not after the commit: a local write folded into the same store batch runs
    // after this one and must get a later HLC, or the peer would drop it as older and the two
    // regions would keep different entities.
    this.#service.observeHlc(change.hlc);
    const current = await tx.get(change.kind, change.key, { includeDeleted: true });
    const incoming = stampOf(change.kind, change.after, change);
    if (current && !wins(incoming, stampOf(current.kind, current.doc, current))) return 'stale';
    await tx.apply({
      changeId: change.id,
      kind: change.kind,
      key: change.key,
      op: change.op,
      ref: change.ref,
      doc: change.op === 'delete' ? null : change.after,
      tombstone: change.op === 'delete' ? change.after : null,
      version: change.version,
      hlc: change.hlc,
      origin: change.origin,
      at: this.#service.clock.now(),
    });
    return 'applied';
  }

  /**
   * Who may have made the change: a peer speaks for itself only (its link is authenticated by its
   * site certificate, so the origin is the peer the change came from), and only a region allowed to
   * grant access may write tokens. Then the kinds registered with this region's registry.
   */
  #problem(peer: string, change: ChangeRecord): LetterProblem | undefined {
    if (change.origin !== peer)
      return {
        code: 'IOTDR_REPLICATION_FOREIGN_ORIGIN',
        reason: `${peer} sent a change of origin '${change.origin}': a region applies from a peer only that peer's own changes`,
      };
    if (change.kind === KIND.token && this.#tokensFrom !== undefined && !this.#tokensFrom.has(change.origin))
      return {
        code: 'IOTDR_REPLICATION_GRANT_REFUSED',
        reason: `${change.origin} may not write tokens here (replication.tokensFrom: ${[...this.#tokensFrom].join(', ') || 'none'})`,
      };
    return this.#kindProblem(change);
  }

  /** Checked against the kinds registered with this region's registry (an unregistered kind is refused). */
  #kindProblem(change: ChangeRecord): EntityProblem | undefined {
    if (change.op === 'delete' && change.after !== null) {
      // A tombstone that remembers something: only a revoked certificate's does.
      const reason = tombstoneProblem(change.kind, change.key, change.after);
      if (reason !== undefined) return { code: 'IOTDR_REGISTRY_INVALID_ENTITY', reason };
    }
    const doc = change.op === 'delete' ? null : change.after;
    return this.#service.kinds.problem(change.kind, change.key, change.ref, doc);
  }

  async #applyAll(
    tx: WriteTx,
    peer: string,
    changes: Array<{ change: ChangeRecord; id: string }>,
  ): Promise<{ outcomes: ChangeOutcome[]; maxHlc: Hlc | undefined }> {
    const now = this.#service.clock.now();
    const outcomes: ChangeOutcome[] = [];
    let maxHlc: Hlc | undefined;
    for (const { change, id } of changes) {
      const problem = this.#problem(peer, change);
      if (problem !== undefined) {
        const letter: DeadLetter = {
          peer,
          id,
          seq: change.seq,
          change,
          code: problem.code,
          reason: problem.reason,
          at: now,
          attempts: 0,
        };
        await tx.putLocal(deadKey(peer, id), { ...letter }, now);
        outcomes.push('dead-letter');
        continue;
      }
      outcomes.push(await this.#apply(tx, change));
      if (!maxHlc || compareHlc(change.hlc, maxHlc) > 0) maxHlc = change.hlc;
    }
    return { outcomes, maxHlc };
  }

  async applyChanges(peer: string, changes: ChangeRecord[], cursor: number): Promise<BatchResult> {
    const result = await this.#service.transaction(async (tx) => {
      const progress = asProgress(await tx.getLocal(progressKey(peer)));
      const applied = await this.#applyAll(
        tx,
        peer,
        changes.map((change) => ({ change, id: seqId(change.seq) })),
      );
      await tx.putLocal(progressKey(peer), { ...progress, cursor }, this.#service.clock.now());
      return applied;
    });
    if (result.maxHlc) this.#service.observeHlc(result.maxHlc);
    return { outcomes: result.outcomes };
  }

  async advance(peer: string, cursor: number): Promise<void> {
    await this.#service.transaction(async (tx) => {
      const progress = asProgress(await tx.getLocal(progressKey(peer)));
      if (cursor > progress.cursor) {
        await tx.putLocal(progressKey(peer), { ...progress, cursor }, this.#service.clock.now());
      }
    });
  }

  async beginBootstrap(peer: string, watermark: number): Promise<void> {
    const now = this.#service.clock.now();
    await this.#service.transaction(async (tx) => {
      const progress = asProgress(await tx.getLocal(progressKey(peer)));
      const next: LinkProgress = {
        ...progress,
        bootstrap: { watermark, after: null, copied: 0, startedAt: now },
      };
      await tx.putLocal(progressKey(peer), { ...next }, now);
    });
  }

  async applySnapshot(
    peer: string,
    entities: EntityRecord[],
    next: { kind: string; key: string } | null,
  ): Promise<BatchResult> {
    const result = await this.#service.transaction(async (tx) => {
      const progress = asProgress(await tx.getLocal(progressKey(peer)));
      if (!progress.bootstrap) throw new Error(`no snapshot copy in progress for ${peer}`);
      const applied = await this.#applyAll(
        tx,
        peer,
        entities.map((e) => ({ change: entityAsChange(e), id: `snapshot:${e.kind}|${e.key}` })),
      );
      const copied = progress.bootstrap.copied + entities.length;
      // The last page ends the copy in the same transaction: the link tails from the watermark.
      const updated: LinkProgress =
        next === null
          ? { cursor: Math.max(progress.cursor, progress.bootstrap.watermark), bootstrapped: true }
          : { ...progress, bootstrap: { ...progress.bootstrap, after: next, copied } };
      await tx.putLocal(progressKey(peer), { ...updated }, this.#service.clock.now());
      return applied;
    });
    if (result.maxHlc) this.#service.observeHlc(result.maxHlc);
    return { outcomes: result.outcomes };
  }

  async deadLetters(peer?: string): Promise<DeadLetter[]> {
    const prefix = peer === undefined ? 'replication/' : deadPrefix(peer);
    const out: DeadLetter[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#service.store.listLocal(prefix, {
        limit: 500,
        ...(after === undefined ? {} : { after }),
      });
      for (const r of page) if (r.key.includes('/dead/')) out.push(r.value as unknown as DeadLetter);
      if (page.length < 500) return out;
      after = page[page.length - 1]?.key;
    }
  }

  async retryDeadLetter(peer: string, id: string): Promise<ChangeOutcome> {
    const result = await this.#service.transaction(async (tx) => {
      const stored = await tx.getLocal(deadKey(peer, id));
      if (!stored) throw deadLetterNotFound(peer, id);
      const letter = stored as unknown as DeadLetter;
      const now = this.#service.clock.now();
      const problem = this.#problem(peer, letter.change);
      if (problem !== undefined) {
        await tx.putLocal(
          deadKey(peer, id),
          { ...letter, code: problem.code, reason: problem.reason, attempts: letter.attempts + 1 },
          now,
        );
        return { outcome: 'dead-letter' as const, hlc: undefined };
      }
      const outcome = await this.#apply(tx, letter.change);
      await tx.putLocal(deadKey(peer, id), null, now);
      return { outcome, hlc: letter.change.hlc };
    });
    if (result.hlc) this.#service.observeHlc(result.hlc);
    return result.outcome;
  }

  async discardDeadLetter(peer: string, id: string): Promise<void> {
    await this.#service.transaction(async (tx) => {
      if (!(await tx.getLocal(deadKey(peer, id)))) throw deadLetterNotFound(peer, id);
      await tx.putLocal(deadKey(peer, id), null, this.#service.clock.now());
    });
  }
}

/**
 * An open event stream is authorized once, at the upgrade; its token can be deleted afterwards.
 * StreamGuard verifies the token of every open stream again: at once when the registry commits a
 * change of that token (as the broker re-resolves its sessions), and every `recheckMs` for the
 * writers this process does not see (another process sharing a PostgreSQL registry). A stream
 * whose token no longer reads the bus is closed with 1008.
 */
import type { WebSocket } from 'ws';
import { systemTimers, type Timers } from '../common/index.js';
import { decideAccess, type Role, type TokenVerifier } from '../http/index.js';
import { KIND } from '../registry/index.js';

/** How often the token of an open stream is verified again, in ms. Default 5000. */
export const DEFAULT_STREAM_RECHECK_MS = 5000;
/** WebSocket close code and reason of a stream whose token was revoked (RFC 6455 §7.4.1: policy violation). */
export const REVOKED_CLOSE_CODE = 1008;
export const REVOKED_CLOSE_REASON = 'token revoked';

/** What verifies a stream's token: the region's RegistryService is one. */
export interface StreamTokens extends TokenVerifier {
  /** Registry commits; without it only the periodic check sees a revocation. */
  onCommit?(listener: (changes: readonly { kind: string; key: string }[]) => void): () => void;
}

export interface StreamGuardOptions {
  tokens: StreamTokens;
  /** Roles that may read the stream. */
  roles: readonly Role[];
  /** Interval of the periodic check, ms. Default DEFAULT_STREAM_RECHECK_MS. */
  recheckMs?: number;
  timers?: Timers;
  /** Told of each stream closed for its token (logging). */
  onRevoked?: (tokenId: string | undefined) => void;
}

interface Guarded {
  readonly token: string;
  readonly tokenId: string | undefined;
}

export class StreamGuard {
  readonly #options: StreamGuardOptions;
  readonly #timers: Timers;
  readonly #recheckMs: number;
  readonly #streams = new Map<WebSocket, Guarded>();
  readonly #unsubscribe: (() => void) | undefined;
  #tick: unknown;
  #checking = false;

  constructor(options: StreamGuardOptions) {
    this.#options = options;
    this.#timers = options.timers ?? systemTimers;
    this.#recheckMs = options.recheckMs ?? DEFAULT_STREAM_RECHECK_MS;
    this.#unsubscribe = options.tokens.onCommit?.((changes) => {
      const ids = new Set(changes.filter((c) => c.kind === KIND.token).map((c) => c.key));
      if (ids.size === 0) return;
      for (const [ws, guarded] of this.#streams)
        if (guarded.tokenId !== undefined && ids.has(guarded.tokenId)) void this.#check(ws, guarded);
    });
  }

  /** Open streams watched. */
  get size(): number {
    return this.#streams.size;
  }

  /** Watches an accepted stream until it closes. */
  add(ws: WebSocket, token: string, tokenId: string | undefined): void {
    this.#streams.set(ws, { token, tokenId });
    ws.once('close', () => this.#streams.delete(ws));
    this.#schedule();
  }

  /** Verifies every open stream's token now (the periodic check calls it). */
  async checkAll(): Promise<void> {
    await Promise.all([...this.#streams].map(([ws, guarded]) => this.#check(ws, guarded)));
  }

  close(): void {
    this.#unsubscribe?.();
    if (this.#tick !== undefined) this.#timers.clearTimeout(this.#tick);
    this.#tick = undefined;
    this.#streams.clear();
  }

  async #check(ws: WebSocket, guarded: Guarded): Promise<void> {
    let allowed: boolean;
    try {
      allowed = decideAccess(await this.#options.tokens.verifyToken(guarded.token), {
        roles: this.#options.roles,
      }).ok;
    } catch {
      // The registry cannot be read now: the stream stays as it was, the next check decides.
      return;
    }
    if (allowed || !this.#streams.has(ws)) return;
    this.#streams.delete(ws);
    this.#options.onRevoked?.(guarded.tokenId);
    ws.close(REVOKED_CLOSE_CODE, REVOKED_CLOSE_REASON);
  }

  /** One timer for every stream, running only while there are streams. */
  #schedule(): void {
    if (this.#tick !== undefined || this.#streams.size === 0) return;
    this.#tick = this.#timers.setTimeout(() => {
      this.#tick = undefined;
      if (this.#checking) return this.#schedule();
      this.#checking = true;
      void this.checkAll().finally(() => {
        this.#checking = false;
        this.#schedule();
      });
    }, this.#recheckMs);
  }
}

import type { Agent } from 'node:https';
import { type RawAnswer, sendRequest } from '../http/index.js';
import type { ChangeRecord, EntityRecord } from '../registry/index.js';
import { FeedError, peerUnreachable } from './errors.js';
import type { ChangeFeed, FeedPage, SnapshotPage } from './types.js';

export interface HttpChangeFeedOptions {
  /** The peer's API base URL, e.g. http://127.0.0.12:8080. */
  baseUrl: string;
  /** The peer region's name: the feed asks for the changes of this origin only. */
  peer: string;
  /**
   * A bearer token with the replicator role, valid at the peer: on plain loopback links only. Over
   * mutual TLS the region is known by its site certificate, in `agent`.
   */
  token?: string;
  /** The region's site agent, which also checks that the peer's certificate names the peer. */
  agent?: Agent;
  /** How long a request may take beyond its long-poll wait, in ms (default 10000). */
  timeoutMs?: number;
}

/** A peer's change feed and snapshot over its HTTP API (the edge; the replicator sees only ChangeFeed). */
export class HttpChangeFeed implements ChangeFeed {
  readonly #base: string;
  readonly #peer: string;
  readonly #token: string | undefined;
  readonly #agent: Agent | undefined;
  readonly #timeoutMs: number;

  constructor(options: HttpChangeFeedOptions) {
    this.#base = options.baseUrl.replace(/\/+$/, '');
    this.#peer = options.peer;
    this.#token = options.token;
    this.#agent = options.agent;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  async #get<T>(path: string, signal: AbortSignal, timeoutMs: number): Promise<T> {
    const url = `${this.#base}${path}`;
    let res: RawAnswer;
    try {
      res = await sendRequest(url, {
        method: 'GET',
        headers: {
          ...(this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` }),
          accept: 'application/json',
        },
        ...(this.#agent === undefined ? {} : { trust: this.#agent }),
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      });
    } catch (error) {
      throw peerUnreachable(this.#peer, this.#base, error);
    }
    const text = res.text;
    if (res.status < 200 || res.status >= 300) {
      let code: string = 'IOTDR_REPLICATION_PEER_ERROR';
      let detail = text.slice(0, 200);
      try {
        const problem = JSON.parse(text) as { code?: string; detail?: string };
        code = problem.code ?? code;
        detail = problem.detail ?? detail;
      } catch {
        // not problem+json
      }
      const hint =
        res.status === 401 || res.status === 403
          ? this.#agent === undefined
            ? ' (check the replicator token)'
            : " (check this region's site certificate, docs/security.md)"
          : '';
      throw new FeedError(
        `peer ${this.#peer} answered ${res.status} ${code}: ${detail}${hint}`,
        res.status,
        code,
      );
    }
    return JSON.parse(text) as T;
  }

  pull(options: { after: number; limit: number; waitMs: number; signal: AbortSignal }): Promise<FeedPage> {
    const q = new URLSearchParams({
      after: String(options.after),
      limit: String(options.limit),
      wait: String(options.waitMs),
      origin: this.#peer,
    });
    return this.#get<FeedPage & { changes: ChangeRecord[] }>(
      `/v1/changes?${q}`,
      options.signal,
      options.waitMs + this.#timeoutMs,
    );
  }

  snapshot(options: {
    after?: { kind: string; key: string };
    limit: number;
    signal: AbortSignal;
  }): Promise<SnapshotPage> {
    const q = new URLSearchParams({ origin: this.#peer, limit: String(options.limit) });
    if (options.after) {
      q.set('afterKind', options.after.kind);
      q.set('afterKey', options.after.key);
    }
    return this.#get<SnapshotPage & { entities: EntityRecord[] }>(
      `/v1/snapshot?${q}`,
      options.signal,
      this.#timeoutMs,
    );
  }
}

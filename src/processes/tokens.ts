/**
 * People's tokens where there is no registry: `iotdr control` and `iotdr analytics` ask a region
 * who a bearer token is (GET /v1/whoami, with that token), so a token made, scoped or deleted
 * through any region's API counts at control and analytics as it does in the regions. Regions are
 * asked in priority order; the first that answers decides (a 401 is an answer: the token is not
 * valid). When none answers, the admin token's file decides alone: the operator can still move the
 * fleet while every region is down.
 */
import { createHash } from 'node:crypto';
import { type Clock, systemClock } from '../common/index.js';
import { ApiClient, CallError, type Principal, type TokenVerifier } from '../http/index.js';
import { REGISTRY_ROUTES, TOKEN_CACHE_TTL_MS } from '../registry/index.js';

/** How long a region may take to say who a token is, in ms. */
export const WHOAMI_TIMEOUT_MS = 1000;
/** Tokens remembered at once; the oldest is forgotten first. */
const MAX_CACHED = 1000;

export interface RegionTokensOptions {
  /** The regions to ask, in the order to ask them (priority). */
  regions: ReadonlyArray<{ name: string; url: string }>;
  /** The platform's CA (PEM), to verify the regions' HTTPS; undefined on plain loopback links. */
  caPem?: string;
  /** Decides when no region answers: the admin token's file. */
  fallback: TokenVerifier;
  /** How long an answer is trusted, in ms. Default the registry's own cache time (2 s). */
  ttlMs?: number;
  clock?: Clock;
}

interface Cached {
  principal: Principal | undefined;
  until: number;
}

export class RegionTokens implements TokenVerifier {
  readonly #options: RegionTokensOptions;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #cache = new Map<string, Cached>();

  constructor(options: RegionTokensOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#ttlMs = options.ttlMs ?? TOKEN_CACHE_TTL_MS;
  }

  async verifyToken(token: string): Promise<Principal | undefined> {
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.#clock.now();
    const cached = this.#cache.get(key);
    if (cached !== undefined && cached.until > now) return cached.principal;
    const answer = await this.#ask(token);
    if (answer === 'unanswered') return this.#options.fallback.verifyToken(token);
    this.#cache.delete(key);
    this.#cache.set(key, { principal: answer, until: now + this.#ttlMs });
    if (this.#cache.size > MAX_CACHED) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    return answer;
  }

  /** The first region's answer: who the token is, undefined when not valid, or none answered. */
  async #ask(token: string): Promise<Principal | undefined | 'unanswered'> {
    for (const region of this.#options.regions) {
      const api = new ApiClient(region.name, region.url, token, this.#options.caPem);
      try {
        const me = await api.request(REGISTRY_ROUTES.whoami, { timeoutMs: WHOAMI_TIMEOUT_MS });
        return {
          name: me.name,
          role: me.role,
          ...(me.tokenId === undefined ? {} : { tokenId: me.tokenId }),
          ...(me.scope === undefined ? {} : { scope: me.scope }),
        };
      } catch (error) {
        if (error instanceof CallError && error.failure.type === 'refused' && error.failure.status === 401)
          return undefined;
        // Unreachable, timed out, or an answer that is not about the token: ask the next region.
      }
    }
    return 'unanswered';
  }
}

/**
 * The tokens of a process without a registry: the link tokens it knows by value first (plain
 * loopback links only; no region knows them), then people's tokens as the regions say.
 */
export function peopleAndLinkTokens(links: TokenVerifier, people: RegionTokens): TokenVerifier {
  return {
    async verifyToken(token) {
      return (await links.verifyToken(token)) ?? people.verifyToken(token);
    },
  };
}

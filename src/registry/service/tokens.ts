import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../../common/index.js';
import type { Role, TokenScope } from '../../http/index.js';
import { KIND, type TokenDoc } from '../model.js';
import {
  isoNow,
  live,
  loadAny,
  put,
  remove,
  requireLive,
  type ServiceContext,
  writeTransaction,
} from './core.js';

/**
 * Bearer tokens: `iotdr_<16 hex id>_<43 base64url secret>`. Only the SHA-256 of the secret is
 * stored (the secret has 256 bits, so a fast hash is enough); tokens are registry entities, so a
 * console's token works in every region the registry reaches.
 */
const TOKEN_PATTERN = /^iotdr_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export type TokenInfo = Omit<TokenDoc, 'secretHash'> & { version: number };

export interface IssuedToken {
  token: string;
  info: TokenInfo;
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function info(doc: TokenDoc, version: number): TokenInfo {
  const { secretHash: _secret, ...rest } = doc;
  return { ...rest, version };
}

export function generateToken(): { token: string; tokenId: string; secret: string } {
  const tokenId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { token: `iotdr_${tokenId}_${secret}`, tokenId, secret };
}

export function parseToken(token: string): { tokenId: string; secret: string } | undefined {
  const match = TOKEN_PATTERN.exec(token);
  if (!match?.[1] || !match[2]) return undefined;
  return { tokenId: match[1], secret: match[2] };
}

export async function createToken(
  ctx: ServiceContext,
  name: string,
  role: Role,
  scope?: TokenScope,
): Promise<IssuedToken> {
  const { token, tokenId, secret } = generateToken();
  return writeTransaction(ctx, async (tx) => {
    const doc: TokenDoc = {
      tokenId,
      name,
      role,
      secretHash: hashSecret(secret),
      createdAt: isoNow(ctx),
      ...(scope ? { scope } : {}),
    };
    const version = await put(ctx, tx, KIND.token, tokenId, role, { ...doc }, undefined);
    return { token, info: info(doc, version) };
  });
}

/**
 * Makes sure a token given from outside (the admin token file) is known with this role: written
 * once, rewritten only if the secret or role differ.
 */
export async function ensureToken(
  ctx: ServiceContext,
  token: string,
  name: string,
  role: Role,
): Promise<'present' | 'created' | 'deleted'> {
  const parsed = parseToken(token);
  if (!parsed)
    throw new ValidationError('malformed token', [{ path: 'token', message: 'not an iotdr token' }]);
  const secretHash = hashSecret(parsed.secret);
  const existing = await ctx.store.get(KIND.token, parsed.tokenId, { includeDeleted: true });
  // Deleted through the API (here or in a region it replicated from): the file does not revive it.
  if (existing?.deleted) return 'deleted';
  if (live(existing)) {
    const doc = existing.doc as unknown as TokenDoc;
    if (doc.secretHash === secretHash && doc.role === role) return 'present';
  }
  return writeTransaction(ctx, async (tx) => {
    const previous = await loadAny(tx, KIND.token, parsed.tokenId);
    if (previous?.deleted) return 'deleted';
    const doc: TokenDoc = { tokenId: parsed.tokenId, name, role, secretHash, createdAt: isoNow(ctx) };
    await put(ctx, tx, KIND.token, parsed.tokenId, role, { ...doc }, previous);
    return 'created';
  });
}

/**
 * How long a token read from the store is trusted without reading it again, in ms. Changes made
 * through this service drop it at once (see TokenCache.forget); the bound covers writers in other
 * processes that share a PostgreSQL database.
 */
export const TOKEN_CACHE_TTL_MS = 2000;

/** Recently verified tokens, so that every request does not read the store. */
export class TokenCache {
  readonly #entries = new Map<string, { doc: TokenDoc; version: number; until: number }>();

  get(tokenId: string, now: number): { doc: TokenDoc; version: number } | undefined {
    const entry = this.#entries.get(tokenId);
    if (entry === undefined || entry.until <= now) return undefined;
    return entry;
  }

  set(tokenId: string, doc: TokenDoc, version: number, now: number): void {
    if (this.#entries.size >= 10_000) this.#entries.clear();
    this.#entries.set(tokenId, { doc, version, until: now + TOKEN_CACHE_TTL_MS });
  }

  forget(tokenId: string): void {
    this.#entries.delete(tokenId);
  }
}

/** The token's identity when it is valid, undefined otherwise. */
export async function verifyToken(
  ctx: ServiceContext,
  cache: TokenCache,
  token: string,
): Promise<TokenInfo | undefined> {
  const parsed = parseToken(token);
  if (!parsed) return undefined;
  const now = ctx.clock.now();
  let known = cache.get(parsed.tokenId, now);
  if (known === undefined) {
    const record = await ctx.store.get(KIND.token, parsed.tokenId);
    if (!live(record)) return undefined;
    known = { doc: record.doc as unknown as TokenDoc, version: record.version };
    cache.set(parsed.tokenId, known.doc, known.version, now);
  }
  const expected = Buffer.from(known.doc.secretHash, 'hex');
  const actual = Buffer.from(hashSecret(parsed.secret), 'hex');
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
  return info(known.doc, known.version);
}

export async function getToken(ctx: ServiceContext, tokenId: string): Promise<TokenInfo> {
  const record = await requireLive(ctx.store, KIND.token, tokenId);
  return info(record.doc as unknown as TokenDoc, record.version);
}

export async function deleteToken(ctx: ServiceContext, tokenId: string): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    await remove(ctx, tx, await requireLive(tx, KIND.token, tokenId));
  });
}

export function tokenInfo(doc: TokenDoc, version: number): TokenInfo {
  return info(doc, version);
}

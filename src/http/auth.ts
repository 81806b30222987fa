import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../common/index.js';
import { describeSite, type SiteId, type SiteKind } from '../pki/index.js';
import { problem, sendProblem } from './problem.js';
import { siteOfSocket } from './tls.js';

/**
 * Who may call what. The toolkit owns the vocabulary of a bearer token (its role and its scope):
 * every API checks it here, the registry stores tokens that carry it (its token model imports these
 * names), and command and control interprets a scope. None of them has to import another for it.
 */

export const ROLES = ['admin', 'operator', 'reader', 'replicator'] as const;
export type Role = (typeof ROLES)[number];

export const READ: readonly Role[] = ['reader', 'operator'];
export const WRITE: readonly Role[] = ['operator'];
export const ADMIN: readonly Role[] = ['admin'];
export const REPLICATE: readonly Role[] = ['replicator'];

/** What a console token may do on the command-and-control API (all of them when unscoped). */
export const CNC_OPERATIONS = ['read', 'onboard', 'suspend', 'resume', 'decommission', 'command'] as const;
export type CncOperation = (typeof CNC_OPERATIONS)[number];

/**
 * A token's scope: the operations it may run, the thing groups whose devices it may touch and the
 * policy templates it may onboard with. A scoped token works on the command-and-control routes
 * only. The registry's `tokenScopeSchema` parses into this shape (checked at compile time there).
 */
export interface TokenScope {
  operations?: CncOperation[];
  thingGroups?: string[];
  /** Policy templates the token may onboard devices with; absent: none (a scoped token then onboards nothing). */
  templates?: string[];
}

/** Who a bearer token is. The registry's TokenInfo is one (with its tokenId). */
export interface Principal {
  readonly name: string;
  readonly role: Role;
  readonly tokenId?: string;
  /** A console token's limits; such a token works on routes that check scopes (`config.scoped`). */
  readonly scope?: TokenScope;
  /** The site a caller's certificate names, when a site called over mutual TLS (no token then). */
  readonly site?: SiteId;
}

/** The role a site's principal carries, for handlers that ask a principal's role. */
const SITE_ROLES: Readonly<Record<SiteKind, Role>> = {
  region: 'replicator',
  control: 'operator',
  checker: 'operator',
  dns: 'reader',
  analytics: 'reader',
  // An etcd member or a NATS server never calls an iotdr API; no route lists these kinds, so
  // their role is never used.
  etcd: 'reader',
  nats: 'reader',
};

/** Resolves a bearer token: the RegistryService in a region, `staticTokens` in `iotdr control`. */
export interface TokenVerifier {
  verifyToken(token: string): Promise<Principal | undefined> | Principal | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Token roles allowed on the route; admin is allowed everywhere. Absent (and no `sites`): no authentication. */
    roles?: readonly Role[];
    /** Sites allowed on the route, by the kind their certificate names (links between processes). */
    sites?: readonly SiteKind[];
    /**
     * Token roles that stand in for `sites` when the links are plain HTTP (the loopback development
     * switch): the replicator's, the checkers' tokens. Over mutual TLS a token never stands for a site.
     */
    linkRoles?: readonly Role[];
    /** The route checks a token's scope itself (command and control); other routes refuse scoped tokens. */
    scoped?: boolean;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

export interface AuthenticateOptions {
  /**
   * The server speaks mutual TLS with site certificates: a site is known by its certificate, and
   * `linkRoles` tokens are refused. Default false (plain HTTP, the loopback development switch).
   */
  siteLinks?: boolean;
}

/** Who may call a route: its `config` (roles, sites, link roles, scoped) and how the server speaks. */
export interface AccessRule {
  roles?: readonly Role[];
  sites?: readonly SiteKind[];
  linkRoles?: readonly Role[];
  scoped?: boolean;
  siteLinks?: boolean;
}

/** An access decision: the principal, or the refusal as the problem+json it is answered with. */
export type Access =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401 | 403; code: ErrorCode; detail: string; extra?: Record<string, unknown> };

/** The token of an `Authorization: Bearer <token>` header, undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
}

/** Token roles a rule lets in: its roles, and its link roles on plain links. Admin always. */
function tokenRoles(rule: AccessRule): Role[] {
  return [...(rule.roles ?? []), ...(rule.siteLinks ? [] : (rule.linkRoles ?? []))];
}

/**
 * Whether a site (by its certificate) may call a route: only where the route lists its kind.
 */
export function decideSiteAccess(site: SiteId, rule: AccessRule): Access {
  if (!rule.sites?.includes(site.kind))
    return {
      ok: false,
      status: 403,
      code: 'IOTDR_AUTH_SITE_FORBIDDEN',
      detail: `${describeSite(site)} may not call this route${rule.sites?.length ? `; it is for ${rule.sites.join(' or ')} sites` : ''}`,
      extra: { site: { ...site } },
    };
  return { ok: true, principal: { name: describeSite(site), role: SITE_ROLES[site.kind], site } };
}

/**
 * Whether the holder of a bearer token (`principal`; undefined: the token is not valid) may call a
 * route. Admin may call every route; a scoped console token only routes that check scopes.
 */
export function decideAccess(principal: Principal | undefined, rule: AccessRule): Access {
  if (!principal)
    return {
      ok: false,
      status: 401,
      code: 'IOTDR_AUTH_INVALID_TOKEN',
      detail: 'the bearer token is not valid',
    };
  const allowed = tokenRoles(rule);
  if (principal.role !== 'admin' && !allowed.includes(principal.role)) {
    const sites = rule.sites ?? [];
    if (rule.siteLinks && rule.linkRoles?.includes(principal.role) && sites.length > 0)
      return {
        ok: false,
        status: 403,
        code: 'IOTDR_AUTH_SITE_REQUIRED',
        detail: `a '${principal.role}' token does not stand for a site over mutual TLS: call this route with the certificate of a ${sites.join(' or ')} site`,
        extra: { role: principal.role, sites: [...sites] },
      };
    return {
      ok: false,
      status: 403,
      code: 'IOTDR_AUTH_FORBIDDEN',
      detail: `role '${principal.role}' may not do this; needs ${allowed.length > 0 ? allowed.join(' or ') : 'admin'}`,
      extra: { role: principal.role, requiredRoles: [...allowed] },
    };
  }
  if (principal.scope && !rule.scoped)
    return {
      ok: false,
      status: 403,
      code: 'IOTDR_AUTH_SCOPED_TOKEN',
      detail: 'this token is scoped to command-and-control operations; it may not call this route',
    };
  return { ok: true, principal };
}

/** Resolves the bearer token of `header` and decides as decideAccess. */
export async function authorizeBearer(
  header: string | undefined,
  tokens: TokenVerifier,
  rule: AccessRule,
): Promise<Access> {
  const token = bearerToken(header);
  if (token === undefined) {
    const sites = rule.sites ?? [];
    return {
      ok: false,
      status: 401,
      code: 'IOTDR_AUTH_REQUIRED',
      detail:
        tokenRoles(rule).length === 0 && sites.length > 0 && rule.siteLinks
          ? `this route links sites: call it with the certificate of a ${sites.join(' or ')} site, or an admin token`
          : 'send Authorization: Bearer <token>',
    };
  }
  return decideAccess(await tokens.verifyToken(token), rule);
}

/**
 * onRequest hook: runs before the body is read, so an unauthenticated client cannot make the
 * server parse anything. A caller presenting a site certificate is that site, allowed where the
 * route lists its kind; any other caller needs a bearer token of an allowed role.
 */
export function authenticate(tokens: TokenVerifier, options: AuthenticateOptions = {}) {
  const siteLinks = options.siteLinks === true;
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const { roles, sites, linkRoles, scoped } = request.routeOptions.config;
    if (!roles && !sites && !linkRoles) return undefined;
    const rule: AccessRule = {
      ...(roles ? { roles } : {}),
      ...(sites ? { sites } : {}),
      ...(linkRoles ? { linkRoles } : {}),
      scoped: scoped === true,
      siteLinks,
    };
    const site = siteLinks ? siteOfSocket(request.raw.socket) : undefined;
    const access =
      site === undefined
        ? await authorizeBearer(request.headers.authorization, tokens, rule)
        : decideSiteAccess(site, rule);
    if (!access.ok) {
      if (access.status === 401)
        reply.header(
          'www-authenticate',
          access.code === 'IOTDR_AUTH_INVALID_TOKEN'
            ? 'Bearer realm="iotdr", error="invalid_token"'
            : 'Bearer realm="iotdr"',
        );
      return sendProblem(request, reply, problem(access.status, access.code, access.detail, access.extra));
    }
    const principal = access.principal;
    request.principal = principal;
    request.log = request.log.child(
      principal.site
        ? { site: principal.name }
        : principal.tokenId
          ? { tokenId: principal.tokenId }
          : { token: principal.name },
    );
    return undefined;
  };
}

/**
 * Tokens known by value (read from the secret files of the state directory), for processes with no
 * registry of their own. Compared by SHA-256 in constant time.
 */
export function staticTokens(entries: { token: string; name: string; role: Role }[]): TokenVerifier {
  const known = entries.map((e) => ({
    hash: createHash('sha256').update(e.token).digest(),
    name: e.name,
    role: e.role,
  }));
  return {
    verifyToken(token) {
      const hash = createHash('sha256').update(token).digest();
      const found = known.find((k) => timingSafeEqual(k.hash, hash));
      return found ? { name: found.name, role: found.role } : undefined;
    },
  };
}

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { problem, sendProblem } from './problem.js';

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
 * A token's scope: the operations it may run and the thing groups whose devices it may touch.
 * A scoped token works on the command-and-control routes only. The registry's `tokenScopeSchema`
 * parses into this shape (checked at compile time there).
 */
export interface TokenScope {
  operations?: CncOperation[];
  thingGroups?: string[];
}

/** Who a bearer token is. The registry's TokenInfo is one (with its tokenId). */
export interface Principal {
  readonly name: string;
  readonly role: Role;
  readonly tokenId?: string;
  /** A console token's limits; such a token works on routes that check scopes (`config.scoped`). */
  readonly scope?: TokenScope;
}

/** Resolves a bearer token: the RegistryService in a region, `staticTokens` in `iotdr control`. */
export interface TokenVerifier {
  verifyToken(token: string): Promise<Principal | undefined> | Principal | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Roles allowed on the route; admin is allowed everywhere. Absent: no authentication. */
    roles?: readonly Role[];
    /** The route checks a token's scope itself (command and control); other routes refuse scoped tokens. */
    scoped?: boolean;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

/**
 * onRequest hook: runs before the body is read, so an unauthenticated client cannot make the
 * server parse anything.
 */
export function authenticate(tokens: TokenVerifier) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const roles = request.routeOptions.config.roles;
    if (!roles) return undefined;
    const header = request.headers.authorization;
    if (!header) {
      reply.header('www-authenticate', 'Bearer realm="iotdr"');
      return sendProblem(
        request,
        reply,
        problem(401, 'IOTDR_AUTH_REQUIRED', 'send Authorization: Bearer <token>'),
      );
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const principal = match?.[1] ? await tokens.verifyToken(match[1]) : undefined;
    if (!principal) {
      reply.header('www-authenticate', 'Bearer realm="iotdr", error="invalid_token"');
      return sendProblem(
        request,
        reply,
        problem(401, 'IOTDR_AUTH_INVALID_TOKEN', 'the bearer token is not valid'),
      );
    }
    if (principal.role !== 'admin' && !roles.includes(principal.role)) {
      return sendProblem(
        request,
        reply,
        problem(
          403,
          'IOTDR_AUTH_FORBIDDEN',
          `role '${principal.role}' may not do this; needs ${roles.join(' or ')}`,
          {
            role: principal.role,
            requiredRoles: [...roles],
          },
        ),
      );
    }
    if (principal.scope && !request.routeOptions.config.scoped)
      return sendProblem(
        request,
        reply,
        problem(
          403,
          'IOTDR_AUTH_SCOPED_TOKEN',
          'this token is scoped to command-and-control operations; it may not call this route',
        ),
      );
    request.principal = principal;
    request.log = request.log.child(
      principal.tokenId ? { tokenId: principal.tokenId } : { token: principal.name },
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

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Role } from '../model.js';
import type { RegistryService, TokenInfo } from '../service/index.js';
import { problem, sendProblem } from './problem.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Roles allowed on the route; admin is allowed everywhere. Absent: no authentication. */
    roles?: readonly Role[];
  }
  interface FastifyRequest {
    principal?: TokenInfo;
  }
}

/**
 * onRequest hook: runs before the body is read, so an unauthenticated client cannot make the
 * server parse anything.
 */
export function authenticate(service: RegistryService) {
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
    const principal = match?.[1] ? await service.verifyToken(match[1]) : undefined;
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
    request.principal = principal;
    request.log = request.log.child({ tokenId: principal.tokenId });
    return undefined;
  };
}

export const READ: readonly Role[] = ['reader', 'operator'];
export const WRITE: readonly Role[] = ['operator'];
export const ADMIN: readonly Role[] = ['admin'];
export const REPLICATE: readonly Role[] = ['replicator'];

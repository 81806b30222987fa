import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { IotdrError } from '../common/index.js';
import type { Role } from '../registry/index.js';

/** Who a bearer token is. RegistryService satisfies this (its TokenInfo has name and role). */
export interface Principal {
  name: string;
  role: Role;
}

export interface TokenVerifier {
  verifyToken(token: string): Promise<Principal | undefined> | Principal | undefined;
}

/**
 * Tokens known by value (read from the secret files of the state directory): the control process
 * has no registry of its own. Compared by SHA-256 in constant time.
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

export interface ControlApiOptions {
  tokens: TokenVerifier;
  logger: Logger;
  /** Routes to serve: failoverRoutes(controller), and the DNS server's status, etc. */
  routes: Array<(app: FastifyInstance) => Promise<void>>;
  /** Served at /metrics when given. */
  metrics?: Registry;
  /** Largest request body, in bytes. Default 256 KiB. */
  bodyLimit?: number;
}

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [extra: string]: unknown;
}

function problem(
  status: number,
  code: string,
  detail: string,
  extra: Record<string, unknown> = {},
): ProblemBody {
  const type = `urn:iotdr:problem:${code
    .replace(/^IOTDR_/, '')
    .toLowerCase()
    .replace(/_/g, '-')}`;
  return { type, title: status >= 500 ? 'Error' : 'Request refused', status, detail, code, ...extra };
}

function send(request: FastifyRequest, reply: FastifyReply, p: ProblemBody): FastifyReply {
  return reply
    .code(p.status)
    .type('application/problem+json')
    .serializer(JSON.stringify)
    .send({ ...p, instance: request.url.split('?')[0], requestId: String(request.id) });
}

/** Same mapping as the region API: IotdrError and schema failures to problem+json with their code. */
function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof IotdrError) {
    if (error.status >= 500) request.log.error({ err: error }, error.message);
    const extra = { ...(error.issues.length > 0 ? { errors: error.issues } : {}), ...error.details };
    return send(request, reply, problem(error.status, error.code, error.message, extra));
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = error.validationContext ?? 'body';
    const errors = error.validation.map((v) => ({
      path: [where, ...v.instancePath.split('/').filter(Boolean)].join('.'),
      message: v.message ?? 'invalid',
    }));
    const detail = `invalid ${where}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`;
    return send(request, reply, problem(400, 'IOTDR_VALIDATION_FAILED', detail, { errors }));
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return send(
      request,
      reply,
      problem(415, 'IOTDR_HTTP_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json'),
    );
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500)
    return send(request, reply, problem(error.statusCode, 'IOTDR_HTTP_BAD_REQUEST', error.message));
  request.log.error({ err: error }, 'unhandled error');
  return send(request, reply, problem(500, 'IOTDR_INTERNAL', 'internal error'));
}

/**
 * The HTTP API of `iotdr control`: the same conventions as a region's API (bearer tokens, roles
 * in `config.roles` with admin allowed everywhere, problem+json with stable codes), without a
 * registry behind it.
 */
export async function buildControlApi(options: ControlApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger as unknown as FastifyBaseLogger,
    bodyLimit: options.bodyLimit ?? 256 * 1024,
    genReqId: () => randomUUID(),
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.removeContentTypeParser(['text/plain']);
  app.setNotFoundHandler((request, reply) =>
    send(
      request,
      reply,
      problem(404, 'IOTDR_HTTP_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
  app.addHook('onRequest', async (request, reply) => {
    const roles = request.routeOptions.config.roles;
    if (!roles) return undefined;
    const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
    if (!request.headers.authorization) {
      reply.header('www-authenticate', 'Bearer realm="iotdr"');
      return send(request, reply, problem(401, 'IOTDR_AUTH_REQUIRED', 'send Authorization: Bearer <token>'));
    }
    const principal = match?.[1] ? await options.tokens.verifyToken(match[1]) : undefined;
    if (!principal) {
      reply.header('www-authenticate', 'Bearer realm="iotdr", error="invalid_token"');
      return send(request, reply, problem(401, 'IOTDR_AUTH_INVALID_TOKEN', 'the bearer token is not valid'));
    }
    if (principal.role !== 'admin' && !roles.includes(principal.role))
      return send(
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
    request.controlPrincipal = { name: principal.name, role: principal.role };
    return undefined;
  });
  const metrics = options.metrics;
  if (metrics)
    app.get('/metrics', async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.metrics()),
    );
  app.get('/livez', async () => ({ status: 'pass' }));
  for (const routes of options.routes) await app.register(routes);
  return app;
}

import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type onRequestHookHandler } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { parseJsonBody } from './json.js';
import { errorHandler, problem, sendProblem } from './problem.js';
import { type SiteTls, siteServerOptions } from './tls.js';

/** Largest request body by default, in bytes: 1 MiB. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** A request id a client may give in `X-Request-Id`; any other is replaced by a fresh UUID. */
const REQUEST_ID = /^[\w.:-]{1,64}$/;

export interface ApiServerOptions {
  logger: Logger;
  /** Largest request body, in bytes. Default DEFAULT_BODY_LIMIT (1 MiB). */
  bodyLimit?: number;
  /** Serve HTTPS with this certificate and key (PEM); plain HTTP without. */
  https?: { cert: string; key: string };
  /** Serve HTTPS with this site certificate, asking callers for theirs (mutual TLS); wins over `https`. */
  site?: SiteTls;
  /**
   * The onRequest hook that authenticates (before any body is read): `authenticate(verifier)`
   * with the registry in a region, static tokens elsewhere.
   */
  authenticate: onRequestHookHandler;
}

/**
 * The server every iotdr HTTP API is built on (a region's, control's, analytics', a name
 * server's, command and control's), so they keep one set of conventions:
 * - a request id per request, the client's `X-Request-Id` when it is a plain token of at most 64
 *   characters, else a UUID; answered in `X-Request-Id` and written in every log line;
 * - JSON bodies only (anything else 415), at most `bodyLimit` bytes (413), parsed safely;
 * - every answer that is not a success is application/problem+json with a stable code, unknown
 *   routes included (404 `IOTDR_HTTP_NOT_FOUND`);
 * - authentication before the body is read; zod schemas validate requests and serialize answers;
 * - closing answers 503 to new requests and closes idle connections at once.
 */
export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    ...(options.site
      ? { https: siteServerOptions(options.site) }
      : options.https
        ? { https: { cert: options.https.cert, key: options.https.key } }
        : {}),
    loggerInstance: options.logger as unknown as FastifyBaseLogger,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    forceCloseConnections: true,
    // Names may be 128 characters; longer path segments still reach the schema and get a 400.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 512 },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  // JSON only: any other body type is answered 415 instead of reaching a schema as a string.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      problem(404, 'IOTDR_HTTP_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onRequest', options.authenticate);
  return app;
}

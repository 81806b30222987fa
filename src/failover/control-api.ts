import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  authenticate,
  errorHandler,
  parseJsonBody,
  problem,
  sendProblem,
  type TokenVerifier,
} from '../registry/index.js';

export interface ControlApiOptions {
  tokens: TokenVerifier;
  logger: Logger;
  /** Routes to serve: failoverRoutes(controller), and the DNS server's status, etc. */
  routes: Array<(app: FastifyInstance) => Promise<void>>;
  /** Served at /metrics when given. */
  metrics?: Registry;
  /** Largest request body, in bytes. Default 256 KiB. */
  bodyLimit?: number;
  /** Serve HTTPS with this certificate and key (PEM); plain HTTP without. */
  https?: { cert: string; key: string };
}

/**
 * The HTTP API of `iotdr control` (and of `iotdr dns`): the same conventions as a region's API
 * (bearer tokens, roles in `config.roles` with admin allowed everywhere, JSON bodies only,
 * problem+json with stable codes), without a registry behind it.
 */
export async function buildControlApi(options: ControlApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.https ? { https: { cert: options.https.cert, key: options.https.key } } : {}),
    loggerInstance: options.logger as unknown as FastifyBaseLogger,
    bodyLimit: options.bodyLimit ?? 256 * 1024,
    genReqId: () => randomUUID(),
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      problem(404, 'IOTDR_HTTP_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
  app.addHook('onRequest', authenticate(options.tokens));
  const metrics = options.metrics;
  if (metrics)
    app.get('/metrics', async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.metrics()),
    );
  app.get('/livez', async () => ({ status: 'pass' }));
  for (const routes of options.routes) await app.register(routes);
  return app;
}

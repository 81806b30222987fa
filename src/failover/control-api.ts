import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { authenticate, createApiServer, type TokenVerifier } from '../http/index.js';

export interface ControlApiOptions {
  tokens: TokenVerifier;
  logger: Logger;
  /** Routes to serve: failoverRoutes(controller), and the DNS server's status, etc. */
  routes: Array<(app: FastifyInstance) => Promise<void>>;
  /** Served at /metrics when given. */
  metrics?: Registry;
  /** Largest request body, in bytes. Default DEFAULT_BODY_LIMIT (1 MiB), as every API. */
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
  const app = createApiServer({
    logger: options.logger,
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    ...(options.https ? { https: options.https } : {}),
    authenticate: authenticate(options.tokens),
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

import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { packageVersion } from '../common/index.js';
import { authenticate, type TokenVerifier } from './auth.js';
import { createApiServer } from './server.js';
import type { SiteTls } from './tls.js';

/** What /metrics serves: a prom-client `Registry`, or anything answering like one. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface ApiOptions {
  logger: Logger;
  /** Who may call: the region's registry, or static tokens (control, analytics, a name server). */
  tokens: TokenVerifier;
  /** Title and one-line description of the API in /openapi.json. */
  openapi: { title: string; description: string };
  /** The API's routes, each a plugin (`failoverRoutes(controller)`, `registryRoutes(service)`…). */
  routes: ReadonlyArray<(app: FastifyInstance) => Promise<void>>;
  /** Served at /metrics (no authentication, as Prometheus scrapes) when given. */
  metrics?: MetricsSource;
  /** More fields for /livez (asked at every request). */
  live?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Hooks to add before any route is registered (request timing, say), so they cover every route. */
  prepare?: (app: FastifyInstance) => void | Promise<void>;
  /** Largest request body, in bytes. Default DEFAULT_BODY_LIMIT (1 MiB). */
  bodyLimit?: number;
  /** Serve HTTPS with this certificate and key (PEM); plain HTTP without. */
  https?: { cert: string; key: string };
  /**
   * Serve HTTPS with this site certificate and know sites by theirs (mutual TLS, docs/security.md);
   * without it the links are plain HTTP, for the loopback development switch only.
   */
  site?: SiteTls;
}

/**
 * Every iotdr HTTP API (a region's, control's, analytics', command and control's, a name
 * server's): the server of `createApiServer` with its conventions, plus what each API serves the
 * same way: /openapi.json made from the routes' zod schemas, /livez, /metrics when given. An API
 * differs from another by its routes and its tokens only.
 */
export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const app = createApiServer({
    logger: options.logger,
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    ...(options.https ? { https: options.https } : {}),
    ...(options.site ? { site: options.site } : {}),
    authenticate: authenticate(options.tokens, { siteLinks: options.site !== undefined }),
  });
  await options.prepare?.(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { ...options.openapi, version: await packageVersion() },
      // OpenAPI 3.0 has no mutualTLS scheme; docs/security.md says which routes take site certificates.
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    // Schemas registered with an id (`.meta({ id })`) become components/schemas, which the routes refer to.
    transformObject: jsonSchemaTransformObject,
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const metrics = options.metrics;
  if (metrics)
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.metrics()),
    );
  const live = options.live;
  app.get('/livez', { schema: { hide: true } }, async () => ({ status: 'pass', ...(await live?.()) }));
  for (const routes of options.routes) await app.register(routes);
  return app;
}

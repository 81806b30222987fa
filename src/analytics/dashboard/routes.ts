import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { IotdrError } from '../../common/index.js';
import { problem, READ, sendProblem } from '../../http/index.js';
import { hostCheck } from '../access.js';
import { ASSET_FILES, type Asset, CONTENT_SECURITY_POLICY, loadAssets } from './assets.js';
import { assetNotFound, tooManyClients, tooManyStreams } from './errors.js';
import { LiveView } from './live.js';
import {
  type DashboardOptions,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_CLIENTS,
  DEFAULT_MAX_CLIENTS_PER_TOKEN,
  DEFAULT_RESEND_MS,
  DEFAULT_ROUTING_TIMEOUT_MS,
} from './options.js';
import { failbackBody, failoverBody, forwardRouting, parseBody } from './routing.js';
import { LiveStream } from './sse.js';

function sendError(request: FastifyRequest, reply: FastifyReply, error: IotdrError): FastifyReply {
  if (error.status >= 500) request.log.warn({ err: error }, error.message);
  return sendProblem(
    request,
    reply,
    problem(error.status, error.code, error.message, { errors: error.issues, ...error.details }),
  );
}

function sendAsset(request: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  reply
    .header('cache-control', asset.cacheControl)
    .header('etag', asset.etag)
    .header('x-content-type-options', 'nosniff');
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  return reply.type(asset.type).send(asset.body);
}

/**
 * The dashboard as a Fastify plugin for `iotdr analytics`: the page and its assets, the live view
 * over Server-Sent Events, and the routing controls forwarded to the control API. The page and its
 * assets need no token; the live view (fleet data) needs one of the reader role or above, and a
 * token holds at most `maxClientsPerToken` of its streams; the routing controls carry the
 * operator's own admin token to control. Every route refuses a Host that does not name analytics
 * (DNS rebinding). The live view starts with the plugin and stops when the server closes.
 */
export function dashboardRoutes(options: DashboardOptions) {
  return async (app: FastifyInstance): Promise<void> => {
    const { page, files } = await loadAssets();
    app.addHook('onRequest', hostCheck(options.allowedHosts ?? []));
    const view = new LiveView(options);
    const maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    const maxClientsPerToken = options.maxClientsPerToken ?? DEFAULT_MAX_CLIENTS_PER_TOKEN;
    const stream = new LiveStream({
      current: () => view.snapshot(),
      maxClients,
      maxClientsPerHolder: maxClientsPerToken,
      resendMs: options.resendMs ?? DEFAULT_RESEND_MS,
      heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.timers ? { timers: options.timers } : {}),
    });
    view.subscribe((snapshot) => stream.broadcast(snapshot));
    view.start();
    // preClose: open event streams would otherwise keep server.close() waiting for ever.
    app.addHook('preClose', async () => {
      view.stop();
      stream.close();
    });

    const regionNames = options.config.regions.map((r) => r.name);
    const routingTimeoutMs = options.routingTimeoutMs ?? DEFAULT_ROUTING_TIMEOUT_MS;

    app.get('/', async (request, reply) =>
      sendAsset(
        request,
        reply
          .header('content-security-policy', CONTENT_SECURITY_POLICY)
          .header('referrer-policy', 'no-referrer')
          .header('x-frame-options', 'DENY'),
        page,
      ),
    );

    app.get<{ Params: { file: string } }>('/assets/:file', async (request, reply) => {
      const asset = files.get(request.params.file);
      if (!asset) return sendError(request, reply, assetNotFound(request.params.file, ASSET_FILES));
      return sendAsset(request, reply, asset);
    });

    // No HEAD twin: a HEAD request would take a client slot for a stream it cannot read.
    app.get('/v1/live', { exposeHeadRoute: false, config: { roles: READ } }, async (request, reply) => {
      // The authentication hook ran: a client without a valid token never gets here.
      const principal = request.principal;
      const holder = principal?.tokenId ?? `name:${principal?.name ?? ''}`;
      const room = stream.hasRoom(holder);
      if (room === 'holder-full') return sendError(request, reply, tooManyStreams(maxClientsPerToken));
      if (room === 'full') return sendError(request, reply, tooManyClients(maxClients));
      reply.hijack();
      stream.add(reply.raw, holder);
      return reply;
    });

    const forward = async (
      request: FastifyRequest,
      reply: FastifyReply,
      path: string,
      body: unknown,
    ): Promise<FastifyReply> => {
      try {
        const answer = await forwardRouting(
          options.forwardTo,
          path,
          body,
          request.headers.authorization,
          routingTimeoutMs,
        );
        request.log.info(
          { path, status: answer.status, node: options.forwardTo.current.name },
          'routing control forwarded to control',
        );
        return reply.code(answer.status).type(answer.contentType).send(answer.body);
      } catch (error) {
        if (error instanceof IotdrError) return sendError(request, reply, error);
        throw error;
      }
    };

    const failover = failoverBody(regionNames);
    app.post('/v1/routing/failover', async (request, reply) => {
      let body: { to: string; reason: string };
      try {
        body = parseBody(failover, request.body);
      } catch (error) {
        if (error instanceof IotdrError) return sendError(request, reply, error);
        throw error;
      }
      return forward(request, reply, '/v1/failover/switch', body);
    });

    app.post('/v1/routing/failback', async (request, reply) => {
      let body: { reason: string };
      try {
        body = parseBody(failbackBody, request.body);
      } catch (error) {
        if (error instanceof IotdrError) return sendError(request, reply, error);
        throw error;
      }
      return forward(request, reply, '/v1/failover/failback', body);
    });
  };
}

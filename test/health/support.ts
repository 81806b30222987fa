import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/common/index.js';
import { type HealthService, healthRoutes } from '../../src/health/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import { buildRegistryApi, type RegistryService, SqliteStore } from '../../src/registry/index.js';
import { fetch } from '../harness/https.js';

/** A real registry (SQLite in a temp dir) and its service, for checkpoints that need one. */
export async function openRegistry(region = 'us-east') {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-health-'));
  const store = new SqliteStore({ path: join(dir, 'registry.db') });
  await store.init();
  const service = regionRegistryService({ store, region });
  await service.init();
  let closed = false;
  return {
    service,
    store,
    async close() {
      if (!closed) await store.close().catch(() => {});
      closed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The region's real HTTP API with the health routes mounted, listening on an ephemeral port. */
export async function startApi(
  service: RegistryService,
  health: HealthService | ((metrics: Registry) => HealthService),
): Promise<{ url: string; app: FastifyInstance; health: HealthService; close(): Promise<void> }> {
  const metrics = new Registry();
  const h = typeof health === 'function' ? health(metrics) : health;
  const app = await buildRegistryApi({
    service,
    logger: createLogger({ level: 'silent' }),
    metrics,
    routes: [healthRoutes(h)],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, app, health: h, close: () => app.close() };
}

/** GET without credentials, as a checker would. */
export async function get(
  url: string,
): Promise<{ status: number; type: string; headers: Headers; body: any }> {
  const res = await fetch(url);
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    headers: res.headers,
    body: text.length > 0 ? JSON.parse(text) : undefined,
  };
}

/** `work` must settle within `ms`, or this rejects: a bound on a wait, not a speed measurement. */
export async function within<T>(ms: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not arrive within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** A plain node:http server on an ephemeral port; `stop()` closes it and its connections. */
export async function startHttp(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server; stop(): Promise<void> }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  let stopped = false;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A promise and the functions that settle it. */
export function deferred<T>() {
  let resolve: (value: T) => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

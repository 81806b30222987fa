import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/common/index.js';
import type { Role } from '../../src/http/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import { buildRegistryApi, type RegistryService, SqliteStore } from '../../src/registry/index.js';
import { fetch } from '../harness/https.js';

export interface TestApi {
  url: string;
  dir: string;
  service: RegistryService;
  metrics: Registry;
  app: FastifyInstance;
  /** A bearer token per role. */
  tokens: Record<Role, string>;
  call(
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
  ): Promise<{ status: number; body: any; type: string }>;
  close(): Promise<void>;
}

/** A temporary directory, removed by the returned function. */
export async function tempDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-events-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A real region API: SQLite registry store, registry service and the Fastify server with the given
 * routes mounted, on an ephemeral port; tokens for every role.
 */
export async function startApi(
  routes: (
    service: RegistryService,
    metrics: Registry,
    dir: string,
  ) => Promise<Array<(app: FastifyInstance) => Promise<void>>>,
  region = 'us-east',
): Promise<TestApi> {
  const { dir, remove } = await tempDir();
  const store = new SqliteStore({ path: join(dir, 'registry.db') });
  await store.init();
  const service = regionRegistryService({ store, region });
  await service.init();
  const tokens = {} as Record<Role, string>;
  for (const role of ['admin', 'operator', 'reader', 'replicator'] as const) {
    tokens[role] = (await service.createToken(`${role}-1`, role)).token;
  }
  const metrics = new Registry();
  const app = await buildRegistryApi({
    service,
    logger: createLogger({ level: 'silent' }),
    metrics,
    routes: await routes(service, metrics, dir),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    url,
    dir,
    service,
    metrics,
    app,
    tokens,
    async call(method, path, body, token) {
      const headers: Record<string, string> = {};
      const t = token === undefined ? tokens.admin : token;
      if (t !== null) headers.authorization = `Bearer ${t}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return {
        status: res.status,
        type: res.headers.get('content-type') ?? '',
        body: text.length > 0 ? JSON.parse(text) : undefined,
      };
    },
    async close() {
      await app.close();
      await store.close();
      await remove();
    },
  };
}

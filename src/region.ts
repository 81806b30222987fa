import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createLogger, type Logger, writeFileAtomic } from './common/index.js';
import {
  ensureStateDir,
  type IotdrConfig,
  passwordFilePath,
  type RegionConfig,
  readSecretFile,
  regionByName,
  sqlitePath,
} from './config/index.js';
import { type CertificateAuthority, loadOrCreateCa } from './pki/index.js';
import {
  buildRegistryApi,
  generateToken,
  PostgresStore,
  RegistryService,
  type RegistryStore,
  regionMetrics,
  SqliteStore,
} from './registry/index.js';
import { digestRoutes, Replication, replicationRoutes, snapshotRoutes } from './replication/index.js';

/**
 * Composition root of one region: its store, registry, certificate authority, replication links
 * from every other region, and HTTP API.
 */
export interface RegionOptions {
  config: IotdrConfig;
  stateDir: string;
  name: string;
  logger?: Logger;
  /** Overrides the configured listen address and port (tests listen on port 0). */
  listen?: { host: string; port: number };
}

export interface RunningRegion {
  name: string;
  /** Base URL of the region's HTTP API, e.g. http://127.0.0.11:8080. */
  apiUrl: string;
  service: RegistryService;
  app: FastifyInstance;
  ca: CertificateAuthority;
  replication: Replication;
  stop(): Promise<void>;
}

export function adminTokenPath(stateDir: string): string {
  return join(stateDir, 'secrets', 'admin.token');
}

export function caCertPath(stateDir: string): string {
  return join(stateDir, 'pki', 'ca.pem');
}

/** The replicator token file: configured, or `<state>/secrets/replicator.token`. */
export function replicatorTokenPath(config: IotdrConfig, stateDir: string): string {
  const file = config.replication.tokenFile;
  if (file === undefined) return join(stateDir, 'secrets', 'replicator.token');
  return isAbsolute(file) ? file : join(stateDir, file);
}

/**
 * Reads a token file, or makes it on first start. Published exclusively and whole, so two
 * regions starting together from one state directory agree on a single token.
 */
async function loadOrCreateToken(stateDir: string, path: string): Promise<string> {
  await ensureStateDir(stateDir);
  const { token } = generateToken();
  if (await writeFileAtomic(path, `${token}\n`, { mode: 0o600, exclusive: true })) return token;
  return readSecretFile(path);
}

/** The admin token, made on first start. */
export function loadOrCreateAdminToken(stateDir: string): Promise<string> {
  return loadOrCreateToken(stateDir, adminTokenPath(stateDir));
}

export async function openStore(region: RegionConfig, stateDir: string): Promise<RegistryStore> {
  const store = region.store;
  if (store.engine === 'postgres') {
    return new PostgresStore({
      connectionString: store.url,
      poolSize: store.poolSize,
      ...(store.passwordFile === undefined
        ? {}
        : { password: await readSecretFile(passwordFilePath(region, stateDir) ?? store.passwordFile) }),
      ...(store.schema === undefined ? {} : { schema: store.schema }),
    });
  }
  const path = sqlitePath(region, stateDir);
  if (path === undefined) throw new Error(`region ${region.name} has no SQLite path`);
  return new SqliteStore({ path, synchronous: store.synchronous });
}

export async function startRegion(options: RegionOptions): Promise<RunningRegion> {
  const { config, stateDir } = options;
  const region = regionByName(config, options.name);
  const logger =
    options.logger ?? createLogger({ level: config.logging.level, name: `region:${region.name}` });
  await ensureStateDir(stateDir);
  const ca = await loadOrCreateCa(join(stateDir, 'pki'));
  const adminToken = await loadOrCreateAdminToken(stateDir);
  // A configured token file is provisioned by the operator on every host; the default one is made
  // here, and regions sharing a state directory share it.
  const replicatorToken =
    config.replication.tokenFile === undefined
      ? await loadOrCreateToken(stateDir, replicatorTokenPath(config, stateDir))
      : await readSecretFile(replicatorTokenPath(config, stateDir));
  const store = await openStore(region, stateDir);
  await store.init();
  const service = new RegistryService({ store, region: region.name, ca });
  const metrics = regionMetrics(region.name);
  const r = config.replication;
  const peers = r.enabled
    ? config.regions.filter((p) => p.name !== region.name).map((p) => ({ name: p.name, apiUrl: apiUrlOf(p) }))
    : [];
  const replication = new Replication({
    service,
    peers,
    token: replicatorToken,
    metrics,
    logger: logger.child({ component: 'replication' }),
    settings: {
      batchSize: r.batchSize,
      waitMs: r.waitMs,
      snapshotPageSize: r.snapshotPageSize,
      retryBaseMs: r.retryBaseMs,
      retryMaxMs: r.retryMaxMs,
      tombstoneRetentionMs: r.tombstoneRetentionSeconds * 1000,
      changeLogRetentionMs: r.changeLogRetentionSeconds * 1000,
      maintenanceIntervalMs: r.maintenanceIntervalSeconds * 1000,
    },
  });
  let app: FastifyInstance | undefined;
  try {
    await service.init();
    await service.ensureToken(adminToken, 'admin', 'admin');
    await service.ensureToken(replicatorToken, 'replicator', 'replicator');
    app = await buildRegistryApi({
      service,
      logger,
      bodyLimit: config.api.bodyLimit,
      version: await packageVersion(),
      metrics,
      routes: [snapshotRoutes(service), digestRoutes(service), replicationRoutes(replication)],
    });
    const listen = options.listen ?? { host: region.address, port: region.api.port };
    await app.listen({ host: listen.host, port: listen.port });
  } catch (error) {
    await app?.close();
    await store.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : region.api.port;
  const host = options.listen?.host ?? region.address;
  const apiUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ apiUrl, store: store.engine }, `region ${region.name} serving`);
  replication.start();
  const running = app;
  return {
    name: region.name,
    apiUrl,
    service,
    app: running,
    ca,
    replication,
    async stop() {
      await replication.stop();
      await running.close();
      await store.close();
    },
  };
}

/** A region's API base URL from its configuration. */
export function apiUrlOf(region: RegionConfig): string {
  const host = region.address.includes(':') ? `[${region.address}]` : region.address;
  return `http://${host}:${region.api.port}`;
}

let cachedVersion: string | undefined;
async function packageVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion;
  try {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    cachedVersion = pkg.version ?? '0.0.0';
  } catch {
    cachedVersion = '0.0.0';
  }
  return cachedVersion;
}

import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { baseUrl, Closers, ConfigError, createLogger, type Logger } from '../common/index.js';
import {
  controlNodesAt,
  type DnsServerConfig,
  dnsTokenPath,
  ensureStateDir,
  type IotdrConfig,
  nameServerStatePath,
  readSecretFile,
} from '../config/index.js';
import {
  BuiltinDnsProvider,
  DnsEngine,
  DnsFollower,
  DnsServer,
  type DnsServerAddress,
} from '../dns/index.js';
import { HEALTH_CONTENT_TYPE, httpStatusOf } from '../health/index.js';
import { buildApi, staticTokens } from '../http/index.js';
import { controlSiteOf, zoneStateOf } from './control.js';
import { siteLinks } from './sites.js';

/**
 * Composition root of `iotdr dns --name NAME`: one of the zone's extra authoritative servers
 * (`dns.servers`), following the decisions of every control node and serving the last one without
 * them, with /health, /v1/dns/status and /metrics on its HTTP port.
 */
export interface NameServerOptions {
  config: IotdrConfig;
  stateDir: string;
  /** The `dns.servers` entry to run. */
  name: string;
  logger?: Logger;
  /** Overrides of the configured listeners (tests listen on port 0). */
  dnsListen?: { host: string; port: number };
  httpListen?: { host: string; port: number };
  /** The one control node to follow (`--control URL`); default every configured control node. */
  controlUrl?: string;
  /** File with the token (role reader); default <state>/secrets/dns.token, made by iotdr control. */
  tokenFile?: string;
  /** Long-poll wait of the follower, ms (tests shorten it). */
  waitMs?: number;
  version?: string;
}

export interface RunningNameServer {
  dns: DnsServerAddress;
  /** Base URL of its HTTP endpoint. */
  httpUrl: string;
  follower: DnsFollower;
  stop(): Promise<void>;
}

export function nameServerConfig(config: IotdrConfig, name: string): DnsServerConfig {
  const server = config.dns.servers.find((s) => s.name === name);
  if (!server) {
    const known = config.dns.servers.map((s) => s.name);
    throw new ConfigError(
      `no DNS server '${name}' in dns.servers${known.length > 0 ? ` (configured: ${known.join(', ')})` : ' (none is configured)'}`,
      [{ path: 'dns.servers', message: `add { name: ${name}, address: <its IP> } to run it` }],
    );
  }
  return server;
}

export async function startNameServer(options: NameServerOptions): Promise<RunningNameServer> {
  const { config, stateDir, name } = options;
  const server = nameServerConfig(config, name);
  const logger = options.logger ?? createLogger({ level: config.logging.level, name: `dns:${name}` });
  await ensureStateDir(stateDir);
  const listen = options.httpListen ?? { host: server.address, port: server.httpPort };
  const links = await siteLinks(
    config,
    stateDir,
    { kind: 'dns', name },
    { addresses: [server.address, listen.host] },
  );
  // Over mutual TLS each node knows this server by its site certificate, and the server checks the
  // node's; the token is for plain links.
  const controls = controlNodesAt(config, options.controlUrl).map((node) => {
    const agent = links.agentFor(controlSiteOf(node.name));
    return { name: node.name, url: node.url, ...(agent === undefined ? {} : { agent }) };
  });
  const token =
    links.tls === undefined ? await readSecretFile(options.tokenFile ?? dnsTokenPath(stateDir)) : undefined;
  const metrics = new Registry();
  const engine = new DnsEngine({ state: zoneStateOf(config, config.dns.address) });
  const follower = new DnsFollower({
    name,
    controls,
    ...(token === undefined ? {} : { token }),
    provider: new BuiltinDnsProvider({ engines: [engine] }),
    statePath: nameServerStatePath(stateDir, name),
    metrics,
    logger,
    ...(options.waitMs === undefined ? {} : { waitMs: options.waitMs }),
    ...(options.version === undefined ? {} : { version: options.version }),
  });
  const closers = new Closers(logger);
  closers.add(async () => links.close());
  try {
    // The kept decision is served from the first query on, before any node is asked.
    await follower.start();
    closers.add(() => follower.stop());
    const dns = new DnsServer({
      engine,
      host: options.dnsListen?.host ?? server.address,
      port: options.dnsListen?.port ?? server.port,
      registry: metrics,
      logger: logger.child({ component: 'dns' }),
    });
    const dnsAddress = await dns.listen();
    closers.add(() => dns.close());
    const app = await buildApi({
      openapi: {
        title: 'iotdr DNS server API',
        description: "Health and status of one of the zone's authoritative servers.",
      },
      tokens: staticTokens([]),
      ...(links.tls === undefined ? {} : { site: links.tls }),
      logger,
      routes: [statusRoutes(follower)],
      metrics,
      bodyLimit: config.api.bodyLimit,
    });
    closers.add(() => app.close());
    await app.listen({ host: listen.host, port: listen.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : listen.port;
    const httpUrl = baseUrl(listen.host, port, links.tls === undefined ? 'http' : 'https');
    logger.info(
      { dns: `${dnsAddress.host}:${dnsAddress.port}`, httpUrl, controls: controls.map((c) => c.url) },
      'DNS server serving',
    );
    return { dns: dnsAddress, httpUrl, follower, stop: () => closers.close() };
  } catch (error) {
    await closers.close();
    throw error;
  }
}

/** GET /health (health+json, no authentication, like a region's) and GET /v1/dns/status. */
function statusRoutes(follower: DnsFollower) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/health', async (_request, reply) => {
      const body = follower.health();
      return reply
        .code(httpStatusOf(body.status))
        .header('cache-control', 'no-store')
        .type(HEALTH_CONTENT_TYPE)
        .send(JSON.stringify(body));
    });
    app.get('/v1/dns/status', async (_request, reply) =>
      reply.header('cache-control', 'no-store').send(follower.status()),
    );
  };
}

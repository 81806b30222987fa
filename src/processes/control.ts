import { isIP } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { Registry } from 'prom-client';
import { baseUrl, Closers, ConfigError, createLogger, type Logger } from '../common/index.js';
import {
  adminTokenPath,
  analyticsTokenPath,
  apiUrlOf,
  checkerTokenPath,
  dnsTokenPath,
  ensureStateDir,
  type IotdrConfig,
  readSecretFile,
} from '../config/index.js';
import {
  BuiltinDnsProvider,
  CONTROL_NAMESERVER,
  DnsEngine,
  DnsServer,
  type DnsServerAddress,
  type DnsStateInput,
  PowerDnsProvider,
} from '../dns/index.js';
import {
  Checker,
  DEFAULT_CHECKER_ID,
  DecisionFeed,
  type DecisionSink,
  decisionRoutes,
  defaultObservationMaxAgeMs,
  FailoverController,
  FailoverStore,
  failoverGiveUpMs,
  failoverRoutes,
  ProviderSink,
  registerFailoverMetrics,
  SwitchExecutor,
} from '../failover/index.js';
import { buildApi, type Role, staticTokens } from '../http/index.js';
import { loadOrCreateAdminToken, loadOrCreateToken } from './region.js';
import { siteLinks } from './sites.js';
import { peopleAndLinkTokens, RegionTokens } from './tokens.js';

/** The site name of `iotdr control` (one control process per fleet). */
export const CONTROL_SITE = { kind: 'control', name: 'control' } as const;

/**
 * Composition root of `iotdr control`: the embedded checker, the failover controller with its
 * switch executor, the built-in authoritative DNS that follows the controller, and the control API.
 */
export interface ControlOptions {
  config: IotdrConfig;
  stateDir: string;
  logger?: Logger;
  /** Overrides the configured control API listener (tests listen on port 0). */
  listen?: { host: string; port: number };
  /** Overrides the configured DNS listener (tests listen on port 0). */
  dnsListen?: { host: string; port: number };
}

export interface RunningControl {
  /** Base URL of the control API, e.g. http://127.0.0.10:8080. */
  controlUrl: string;
  dns: DnsServerAddress;
  controller: FailoverController;
  stop(): Promise<void>;
}

/**
 * The zone every iotdr DNS server answers, before any decision: the fleet's names and the name
 * servers — `ns.<zone>` at `controlDnsAddress` and every `dns.servers` entry.
 */
export function zoneStateOf(config: IotdrConfig, controlDnsAddress: string): DnsStateInput {
  return {
    zone: config.zone,
    ttl: config.dns.ttl,
    names: { mqtt: config.names.mqtt, api: config.names.api, extra: [...config.dns.extraNames] },
    nameservers: [
      { name: CONTROL_NAMESERVER, address: controlDnsAddress },
      ...config.dns.servers.map((s) => ({ name: s.name, address: s.address })),
    ],
  };
}

/** An IP for the address the control DNS listens on (a hostname listener is glued as loopback). */
function glueOf(host: string): string {
  return isIP(host) === 0 ? '127.0.0.1' : host;
}

export async function startControl(options: ControlOptions): Promise<RunningControl> {
  const { config, stateDir } = options;
  const logger = options.logger ?? createLogger({ level: config.logging.level, name: 'control' });
  await ensureStateDir(stateDir);
  const adminToken = await loadOrCreateAdminToken(stateDir);
  const listenHost = options.listen?.host ?? config.control.address;
  const links = await siteLinks(config, stateDir, CONTROL_SITE, {
    addresses: [config.control.address, listenHost],
  });
  // Checkers, name servers and analytics show their site certificates over mutual TLS; these
  // tokens stand in for them on the plain loopback switch only.
  const linkTokens: { token: string; name: string; role: Role }[] =
    links.tls === undefined
      ? [
          {
            token: await loadOrCreateToken(stateDir, checkerTokenPath(stateDir)),
            name: 'checker',
            role: 'operator',
          },
          { token: await loadOrCreateToken(stateDir, dnsTokenPath(stateDir)), name: 'dns', role: 'reader' },
          {
            token: await loadOrCreateToken(stateDir, analyticsTokenPath(stateDir)),
            name: 'analytics',
            role: 'reader',
          },
        ]
      : [];
  for (const region of config.regions) {
    // DNS answers an address: a hostname would need resolving on every switch, and could fail then.
    if (isIP(region.address) === 0)
      throw new ConfigError(
        `region ${region.name}: address ${region.address} is a hostname; the built-in DNS answers IP addresses, so give the region's IP`,
        [
          {
            path: 'regions',
            message: 'an IPv4 or IPv6 literal for every region when iotdr control serves the DNS',
          },
        ],
      );
  }
  const addresses = new Map(config.regions.map((r) => [r.name, r.address]));
  const addressOf = (region: string) => addresses.get(region) ?? '';
  const dnsHost = options.dnsListen?.host ?? config.dns.address;
  const metrics = new Registry();
  const engine = new DnsEngine({ state: zoneStateOf(config, glueOf(dnsHost)) });
  const feed = new DecisionFeed(addressOf);
  const sinks: DecisionSink[] = [
    new ProviderSink({ provider: new BuiltinDnsProvider({ engines: [engine] }), addressOf, logger }),
    feed,
  ];
  const pdns = config.dns.provider === 'powerdns' ? config.dns.powerdns : undefined;
  if (pdns) {
    const keyFile = isAbsolute(pdns.apiKeyFile) ? pdns.apiKeyFile : join(stateDir, pdns.apiKeyFile);
    sinks.push(
      new ProviderSink({
        provider: new PowerDnsProvider({
          url: pdns.url,
          serverId: pdns.serverId,
          apiKey: await readSecretFile(keyFile),
          zone: config.zone,
          ttl: config.dns.ttl,
          names: { mqtt: config.names.mqtt, api: config.names.api, extra: [...config.dns.extraNames] },
          nameservers: [CONTROL_NAMESERVER, ...config.dns.servers.map((s) => s.name)],
          timeoutMs: Math.max(config.failover.timeoutMs, 1000),
        }),
        addressOf,
        logger: logger.child({ component: 'dns', provider: 'powerdns' }),
      }),
    );
  }

  const closers = new Closers(logger);
  closers.add(async () => links.close());
  try {
    const dns = new DnsServer({
      engine,
      host: dnsHost,
      port: options.dnsListen?.port ?? config.dns.port,
      registry: metrics,
      logger: logger.child({ component: 'dns' }),
    });
    const dnsAddress = await dns.listen();
    closers.add(() => dns.close());
    for (const sink of sinks) if (sink instanceof ProviderSink) closers.add(() => sink.close());

    const store = new FailoverStore(join(stateDir, 'control', 'failover.db'));
    closers.add(async () => store.close());
    const regions = config.regions.map((r) => {
      const agent = links.agentFor({ kind: 'region', name: r.name });
      return {
        name: r.name,
        priority: r.priority,
        url: apiUrlOf(config, r),
        ...(agent === undefined ? {} : { agent }),
      };
    });
    const f = config.failover;
    const executor = new SwitchExecutor({
      regions: regions.map(({ name, url, agent }) => ({
        name,
        url,
        ...(agent === undefined ? {} : { agent }),
      })),
      ...(links.tls === undefined ? { adminToken } : {}),
      sinks,
      webhooks: f.webhooks.map((w) => ({ url: w.url, ...(w.headers ? { headers: { ...w.headers } } : {}) })),
      disconnectOnFailover: f.disconnectOnFailover,
      requestTimeoutMs: f.timeoutMs,
      logger: logger.child({ component: 'switch' }),
    });
    const controller = new FailoverController({
      regions: regions.map(({ name, priority, url }) => ({ name, priority, url })),
      checkers: [...f.checkers],
      store,
      failureThreshold: f.failureThreshold,
      recoveryThreshold: f.recoveryThreshold,
      failback: f.failback,
      stablePeriodMs: f.stablePeriodMs,
      degradedBudgetMs: f.degradedBudgetMs,
      observationMaxAgeMs: defaultObservationMaxAgeMs(f.intervalMs, f.timeoutMs, failoverGiveUpMs(f)),
      actions: executor,
      logger: logger.child({ component: 'controller' }),
    });
    await controller.start();
    closers.add(() => controller.stop());
    registerFailoverMetrics(metrics, controller);
    if (f.checkers.includes(DEFAULT_CHECKER_ID)) {
      const checker = new Checker({
        id: DEFAULT_CHECKER_ID,
        regions: regions.map(({ name, url, agent }) => ({
          name,
          url,
          ...(agent === undefined ? {} : { agent }),
        })),
        sink: controller,
        intervalMs: f.intervalMs,
        timeoutMs: f.timeoutMs,
        giveUpMs: failoverGiveUpMs(f),
        critical: [...config.health.critical],
      });
      checker.start();
      closers.add(() => checker.stop());
    }
    const app = await buildApi({
      openapi: {
        title: 'iotdr control API',
        description: 'Failover state, routing controls, observations and the decision log of iotdr control.',
      },
      tokens: peopleAndLinkTokens(
        staticTokens(linkTokens),
        new RegionTokens({
          regions: [...regions].sort((a, b) => a.priority - b.priority),
          ...(links.tls === undefined ? {} : { caPem: links.tls.caPem }),
          fallback: staticTokens([{ token: adminToken, name: 'admin', role: 'admin' }]),
        }),
      ),
      ...(links.tls === undefined ? {} : { site: links.tls }),
      logger,
      routes: [failoverRoutes(controller), decisionRoutes(feed)],
      metrics,
      bodyLimit: config.api.bodyLimit,
    });
    closers.add(() => app.close());
    const listen = options.listen ?? { host: config.control.address, port: config.control.port };
    await app.listen({ host: listen.host, port: listen.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : listen.port;
    const controlUrl = baseUrl(listen.host, port, links.tls === undefined ? 'http' : 'https');
    logger.info(
      { controlUrl, dns: `${dnsAddress.host}:${dnsAddress.port}`, adminToken: adminTokenPath(stateDir) },
      'control serving',
    );
    return {
      controlUrl,
      dns: dnsAddress,
      controller,
      stop: () => closers.close(),
    };
  } catch (error) {
    await closers.close();
    throw error;
  }
}

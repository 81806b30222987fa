import { isIP } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Closers, ConfigError, createLogger, type Logger } from './common/index.js';
import { DEFAULT_CHECKER_ID, ensureStateDir, type IotdrConfig } from './config/index.js';
import { BuiltinDnsProvider, DnsEngine, DnsServer, type DnsServerAddress } from './dns/index.js';
import {
  buildControlApi,
  Checker,
  type Decision,
  FailoverController,
  FailoverStore,
  failoverRoutes,
  registerFailoverMetrics,
  SwitchExecutor,
} from './failover/index.js';
import { adminTokenPath, apiUrlOf, loadOrCreateAdminToken, loadOrCreateToken } from './region.js';
import { staticTokens } from './registry/index.js';

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

/** The token remote checkers (`iotdr checker`) present to the control API; role operator. */
export function checkerTokenPath(stateDir: string): string {
  return join(stateDir, 'secrets', 'checker.token');
}

export async function startControl(options: ControlOptions): Promise<RunningControl> {
  const { config, stateDir } = options;
  const logger = options.logger ?? createLogger({ level: config.logging.level, name: 'control' });
  await ensureStateDir(stateDir);
  const adminToken = await loadOrCreateAdminToken(stateDir);
  const checkerToken = await loadOrCreateToken(stateDir, checkerTokenPath(stateDir));
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
  const addressOf = new Map(config.regions.map((r) => [r.name, r.address]));
  const dnsHost = options.dnsListen?.host ?? config.dns.address;
  const metrics = new Registry();
  const engine = new DnsEngine({
    state: {
      zone: config.zone,
      ttl: config.dns.ttl,
      names: { mqtt: config.names.mqtt, api: config.names.api },
      nameservers: [{ name: 'ns', address: isIP(dnsHost) === 0 ? '127.0.0.1' : dnsHost }],
    },
  });
  const provider = new BuiltinDnsProvider({ engines: [engine] });
  const dnsSink = {
    apply: (decision: Decision) =>
      provider.apply({
        region: decision.activeRegion,
        address: addressOf.get(decision.activeRegion) ?? '',
        epoch: decision.epoch,
      }),
  };

  const closers = new Closers(logger);
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

    const store = new FailoverStore(join(stateDir, 'control', 'failover.db'));
    closers.add(async () => store.close());
    const regions = config.regions.map((r) => ({ name: r.name, priority: r.priority, url: apiUrlOf(r) }));
    const f = config.failover;
    const executor = new SwitchExecutor({
      regions,
      adminToken,
      sinks: [dnsSink],
      webhooks: f.webhooks.map((w) => ({ url: w.url, ...(w.headers ? { headers: { ...w.headers } } : {}) })),
      disconnectOnFailover: f.disconnectOnFailover,
      requestTimeoutMs: f.timeoutMs,
      logger: logger.child({ component: 'switch' }),
    });
    const controller = new FailoverController({
      regions,
      checkers: [...f.checkers],
      store,
      failureThreshold: f.failureThreshold,
      recoveryThreshold: f.recoveryThreshold,
      failback: f.failback,
      stablePeriodMs: f.stablePeriodMs,
      actions: executor,
      logger: logger.child({ component: 'controller' }),
    });
    await controller.start();
    closers.add(() => controller.stop());
    registerFailoverMetrics(metrics, controller);
    if (f.checkers.includes(DEFAULT_CHECKER_ID)) {
      const checker = new Checker({
        id: DEFAULT_CHECKER_ID,
        regions: regions.map(({ name, url }) => ({ name, url })),
        sink: controller,
        intervalMs: f.intervalMs,
        timeoutMs: f.timeoutMs,
        critical: [...config.health.critical],
      });
      checker.start();
      closers.add(() => checker.stop());
    }
    const app = await buildControlApi({
      tokens: staticTokens([
        { token: adminToken, name: 'admin', role: 'admin' },
        { token: checkerToken, name: 'checker', role: 'operator' },
      ]),
      logger,
      routes: [failoverRoutes(controller)],
      metrics,
      bodyLimit: config.api.bodyLimit,
    });
    closers.add(() => app.close());
    const listen = options.listen ?? { host: config.control.address, port: config.control.port };
    await app.listen({ host: listen.host, port: listen.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : listen.port;
    const controlUrl = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}`;
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

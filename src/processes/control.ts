import { isIP } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { Registry } from 'prom-client';
import { baseUrl, Closers, ConfigError, createLogger, type Logger } from '../common/index.js';
import {
  adminTokenPath,
  analyticsTokenPath,
  apiUrlOf,
  type ControlNode,
  checkerTokenPath,
  controlNodeOf,
  controlNodesOf,
  dnsTokenPath,
  ensureStateDir,
  etcdEndpointsOf,
  failoverCheckersOf,
  type IotdrConfig,
  readSecretFile,
  SOLE_CONTROL_NODE,
} from '../config/index.js';
import { EtcdControlStore, EtcdElection, etcdClient, etcdRoutes } from '../control/index.js';
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
  type ControlStore,
  DecisionFeed,
  type DecisionSink,
  decisionRoutes,
  defaultObservationMaxAgeMs,
  FailoverController,
  FailoverStore,
  FanOutSink,
  failoverGiveUpMs,
  failoverRoutes,
  HttpObservationSink,
  type Leadership,
  LeaderUnreachableError,
  type ObservationSink,
  ProviderSink,
  RELAYED_BY_HEADER,
  type RelayedRequest,
  registerFailoverMetrics,
  SwitchExecutor,
  soleLeader,
} from '../failover/index.js';
import { buildApi, type Role, relayAgent, sendRequest, staticTokens } from '../http/index.js';
import type { SiteId } from '../pki/index.js';
import { loadOrCreateAdminToken, loadOrCreateToken } from './region.js';
import { siteLinks } from './sites.js';
import { peopleAndLinkTokens, RegionTokens } from './tokens.js';

/** The site name of the single `iotdr control` (no `control.nodes`). */
export const CONTROL_SITE = { kind: 'control', name: SOLE_CONTROL_NODE } as const;

/** A control node's site: `urn:iotdr:site:control:<node>`. */
export function controlSiteOf(node: string): SiteId {
  return { kind: 'control', name: node };
}

/** Time a relayed routing control may take at the leader, ms. */
const RELAY_TIMEOUT_MS = 10_000;

/**
 * Composition root of `iotdr control [--node NAME]`: the node's checker, the failover controller
 * with its switch executor, the built-in authoritative DNS that follows the committed decision,
 * and the control API. One node decides on SQLite; several elect a leader through etcd, and only
 * the leader decides (docs/failover.md, "The control plane").
 */
export interface ControlOptions {
  config: IotdrConfig;
  stateDir: string;
  /** Which of `control.nodes` this is; omitted for the single node. */
  node?: string;
  logger?: Logger;
  /** Overrides the configured control API listener (tests listen on port 0). */
  listen?: { host: string; port: number };
  /** Overrides the configured DNS listener (tests listen on port 0). */
  dnsListen?: { host: string; port: number };
}

export interface RunningControl {
  /** This node's name (`control` for the single node). */
  node: string;
  /** Base URL of the control API, e.g. https://127.0.0.10:8080. */
  controlUrl: string;
  dns: DnsServerAddress;
  controller: FailoverController;
  /** The election, with control nodes. */
  election?: EtcdElection;
  stop(): Promise<void>;
}

/**
 * The zone every iotdr DNS server answers, before any decision: the fleet's names and the name
 * servers — every control node's (`ns.<zone>` at `controlDnsAddress` for the single node, else
 * `<node>.<zone>` at each node's address) and every `dns.servers` entry.
 */
export function zoneStateOf(config: IotdrConfig, controlDnsAddress: string): DnsStateInput {
  const control =
    config.control.nodes.length === 0
      ? [{ name: CONTROL_NAMESERVER, address: controlDnsAddress }]
      : config.control.nodes.map((n) => ({ name: n.name, address: n.address }));
  return {
    zone: config.zone,
    ttl: config.dns.ttl,
    names: { mqtt: config.names.mqtt, api: config.names.api, extra: [...config.dns.extraNames] },
    nameservers: [...control, ...config.dns.servers.map((s) => ({ name: s.name, address: s.address }))],
  };
}

/** An IP for the address the control DNS listens on (a hostname listener is glued as loopback). */
function glueOf(host: string): string {
  return isIP(host) === 0 ? '127.0.0.1' : host;
}

export async function startControl(options: ControlOptions): Promise<RunningControl> {
  const { config, stateDir } = options;
  const node = controlNodeOf(config, options.node);
  const several = config.control.nodes.length > 0;
  const logger = (options.logger ?? createLogger({ level: config.logging.level, name: 'control' })).child(
    several ? { node: node.name } : {},
  );
  await ensureStateDir(stateDir);
  const adminToken = await loadOrCreateAdminToken(stateDir);
  const listenHost = options.listen?.host ?? node.address;
  const site = controlSiteOf(node.name);
  const links = await siteLinks(config, stateDir, site, {
    addresses: [node.address, listenHost],
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
  const dnsHost = options.dnsListen?.host ?? node.dns.address;
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
          nameservers: [
            ...controlNodesOf(config).map((n) => n.dns.label),
            ...config.dns.servers.map((s) => s.name),
          ],
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
      port: options.dnsListen?.port ?? node.dns.port,
      registry: metrics,
      logger: logger.child({ component: 'dns' }),
    });
    const dnsAddress = await dns.listen();
    closers.add(() => dns.close());
    for (const sink of sinks) if (sink instanceof ProviderSink) closers.add(() => sink.close());

    const plane = several ? await etcdPlane(config, node, links.tls, logger) : undefined;
    if (plane) closers.add(() => plane.close());
    const store: ControlStore = plane?.store ?? new FailoverStore(join(stateDir, 'control', 'failover.db'));
    if (!plane) closers.add(async () => store.close());
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
    const checkers = failoverCheckersOf(config);
    // The single node leads itself; its URL is known once it listens.
    let ownUrl = node.url;
    const leadership: Leadership = plane?.election ?? soleLeader(node.name, () => ownUrl);
    const controller = new FailoverController({
      regions: regions.map(({ name, priority, url }) => ({ name, priority, url })),
      checkers,
      store,
      leadership,
      failureThreshold: f.failureThreshold,
      recoveryThreshold: f.recoveryThreshold,
      failback: f.failback,
      stablePeriodMs: f.stablePeriodMs,
      degradedBudgetMs: f.degradedBudgetMs,
      observationMaxAgeMs: defaultObservationMaxAgeMs(f.intervalMs, f.timeoutMs, failoverGiveUpMs(f)),
      actions: executor,
      logger: logger.child({ component: 'controller' }),
    });
    registerFailoverMetrics(metrics, controller);
    if (checkers.includes(node.name)) {
      // The node's checker reports to its own controller and to every other node.
      const peers = controlNodesOf(config).filter((n) => n.name !== node.name);
      const sink: ObservationSink =
        peers.length === 0
          ? controller
          : new FanOutSink([
              { name: node.name, sink: controller },
              ...peers.map((peer) => {
                const agent = links.agentFor(controlSiteOf(peer.name));
                return {
                  name: peer.name,
                  sink: new HttpObservationSink({
                    controlUrl: peer.url,
                    ...(agent === undefined ? { token: linkTokens[0]?.token ?? '' } : { agent }),
                    timeoutMs: f.timeoutMs,
                  }),
                };
              }),
            ]);
      const checker = new Checker({
        id: node.name,
        regions: regions.map(({ name, url, agent }) => ({
          name,
          url,
          ...(agent === undefined ? {} : { agent }),
        })),
        sink,
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
      routes: [
        failoverRoutes(controller, {
          relay: (leaderUrl, leaderNode, request) =>
            relay(leaderUrl, request, node.name, links.tls?.caPem, leaderNode),
        }),
        decisionRoutes(feed),
        etcdRoutes(config.control.etcd.members, (member) => links.agentFor({ kind: 'etcd', name: member })),
      ],
      metrics,
      bodyLimit: config.api.bodyLimit,
    });
    closers.add(() => app.close());
    const listen = options.listen ?? { host: node.address, port: node.port };
    await app.listen({ host: listen.host, port: listen.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : listen.port;
    const controlUrl = baseUrl(listen.host, port, links.tls === undefined ? 'http' : 'https');
    ownUrl = controlUrl;
    // Campaign once the API answers: the leader key names this URL for the others to relay to.
    plane?.start(controlUrl);
    await controller.start();
    closers.add(() => controller.stop());
    logger.info(
      {
        controlUrl,
        dns: `${dnsAddress.host}:${dnsAddress.port}`,
        adminToken: adminTokenPath(stateDir),
        ...(plane ? { etcd: etcdEndpointsOf(config), leaseTtlMs: config.control.etcd.leaseTtlMs } : {}),
      },
      several ? 'control node serving; electing the leader through etcd' : 'control serving',
    );
    return {
      node: node.name,
      controlUrl,
      dns: dnsAddress,
      controller,
      ...(plane ? { election: plane.election } : {}),
      stop: () => closers.close(),
    };
  } catch (error) {
    await closers.close();
    throw error;
  }
}

/** The control plane on etcd for one node: its client, election and store. */
async function etcdPlane(
  config: IotdrConfig,
  node: ControlNode,
  tls: { caPem: string; certPem: string; keyPem: string } | undefined,
  logger: Logger,
) {
  const client = etcdClient({
    endpoints: etcdEndpointsOf(config),
    ...(tls ? { tls: { caPem: tls.caPem, certPem: tls.certPem, keyPem: tls.keyPem } } : {}),
  });
  // The election exists from the start (the controller follows it); its URL is set before it campaigns.
  const election = new EtcdElection({
    client,
    prefix: config.control.etcd.prefix,
    node: node.name,
    url: node.url,
    leaseTtlMs: config.control.etcd.leaseTtlMs,
    logger: logger.child({ component: 'election' }),
  });
  const store = new EtcdControlStore({ client, prefix: config.control.etcd.prefix, election });
  return {
    election,
    store,
    start(url: string) {
      election.setUrl(url);
      election.start();
    },
    async close() {
      await election.stop();
      client.close();
    },
  };
}

/**
 * Relays a routing control to the leader with the caller's token, over a connection that checks
 * the leader's site certificate and shows none of this node's: the leader judges the caller.
 */
async function relay(
  leaderUrl: string,
  request: RelayedRequest,
  node: string,
  caPem: string | undefined,
  leaderNode: string,
) {
  const agent = caPem === undefined ? undefined : relayAgent(caPem, controlSiteOf(leaderNode));
  try {
    const answer = await sendRequest(`${leaderUrl.replace(/\/+$/, '')}${request.url}`, {
      method: request.method,
      headers: {
        accept: 'application/json, application/problem+json',
        [RELAYED_BY_HEADER]: node,
        ...(request.authorization === undefined ? {} : { authorization: request.authorization }),
        ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      ...(agent === undefined ? {} : { trust: agent }),
      signal: AbortSignal.timeout(RELAY_TIMEOUT_MS),
    });
    return { status: answer.status, contentType: answer.contentType, text: answer.text };
  } catch (error) {
    throw new LeaderUnreachableError(node, leaderNode, leaderUrl, error);
  } finally {
    agent?.destroy();
  }
}

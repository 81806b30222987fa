import { Agent } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import {
  brokerRoutes,
  createBroker,
  decodeTicketSecret,
  newTicketSecret,
  type RegionBroker,
  ShadowTopics,
  shadowRoutes,
  TICKET_SECRET_BYTES,
} from '../broker/index.js';
import { CncServer, cncCheckpoint } from '../commands/index.js';
import {
  baseUrl,
  type Clock,
  Closers,
  ConfigError,
  createLogger,
  type Logger,
  packageVersion,
  uuidv7,
} from '../common/index.js';
import {
  adminTokenPath,
  analyticsTokenPath,
  analyticsUrlOf,
  apiUrlOf,
  ensureStateDir,
  type IotdrConfig,
  loadOrCreateSecretFile,
  passwordFilePath,
  type RegionConfig,
  readSecretFile,
  regionByName,
  replicatorTokenPath,
  sqlitePath,
  tlsTicketSecretPath,
} from '../config/index.js';
import { type EventBus, eventRoutes } from '../events/index.js';
import { faultRoutes, RegionFaults } from '../faults/index.js';
import {
  ADDRESS_PLACEHOLDER,
  brokerCheckpoint,
  brokerConnectCheckpoint,
  customCheckpoint,
  DEFAULT_MAX_CONTACT_AGE_MS,
  HealthService,
  healthCacheWindowMs,
  healthRoutes,
  httpCheckpoint,
  REGION_PLACEHOLDER,
  registryCheckpoint,
  replicationCheckpoint,
} from '../health/index.js';
import { type CertificateAuthority, loadOrCreateCa } from '../pki/index.js';
import {
  buildRegistryApi,
  generateToken,
  PostgresStore,
  type RegistryService,
  type RegistryStore,
  regionMetrics,
  SqliteStore,
} from '../registry/index.js';
import { digestRoutes, Replication, replicationRoutes, snapshotRoutes } from '../replication/index.js';
import { DeadLetterStore, parseRuleDefinitions, RuleEngine, ruleRoutes } from '../rules/index.js';
import { brokerListenOf, brokerWorkers, regionBrokerOptions, regionRedis } from './broker-node.js';
import { openRegionBus } from './event-bus.js';
import { regionRegistryService } from './registry.js';
import { ANALYTICS_SITE, siteLinks } from './sites.js';

export { ANALYTICS_SITE };

/**
 * Composition root of one region: its store, registry, certificate authority, replication links
 * from every other region, MQTT broker with shadows and rules, event bus, health API and HTTP API.
 */
export interface RegionOptions {
  config: IotdrConfig;
  stateDir: string;
  name: string;
  logger?: Logger;
  /** Overrides the configured listen address and port (tests listen on port 0). */
  listen?: { host: string; port: number };
  /** Accept fault injection requests (`/v1/faults`, the drill). Default false. */
  faults?: boolean;
}

export interface RunningRegion {
  name: string;
  /** Base URL of the region's HTTP API, e.g. http://127.0.0.11:8080. */
  apiUrl: string;
  /** The broker's mutual-TLS listener, e.g. mqtts://127.0.0.11:8883. */
  mqttUrl: string;
  /** The token listener, when `broker.tokenAuth` is on. */
  mqttTokenUrl?: string;
  /** The command-and-control listener (`api.<zone>`), e.g. http://127.0.0.11:8090. */
  cncUrl: string;
  cnc: CncServer;
  faults: RegionFaults;
  service: RegistryService;
  app: FastifyInstance;
  ca: CertificateAuthority;
  replication: Replication;
  broker: RegionBroker;
  bus: EventBus;
  rules: RuleEngine;
  health: HealthService;
  /** Stops everything, in reverse order of start; idempotent. */
  stop(): Promise<void>;
}

/**
 * Reads a token file, or makes it on first start. Published exclusively and whole, so two
 * regions starting together from one state directory agree on a single token.
 */
export async function loadOrCreateToken(stateDir: string, path: string): Promise<string> {
  await ensureStateDir(stateDir);
  return loadOrCreateSecretFile(path, () => generateToken().token);
}

/** The ticket secret, made on first start (32 random bytes, base64url) as the tokens are. */
export async function loadOrCreateTlsTicketSecret(stateDir: string): Promise<Buffer> {
  await ensureStateDir(stateDir);
  const path = tlsTicketSecretPath(stateDir);
  const secret = decodeTicketSecret(await loadOrCreateSecretFile(path, newTicketSecret));
  if (secret !== undefined) return secret;
  const message =
    `expected at least ${TICKET_SECRET_BYTES} random bytes in base64url (A-Z a-z 0-9 - _); copy the ` +
    'file from a host of the fleet, or move it away to make a new one (then copy that to every host)';
  throw new ConfigError(`secret file ${path} holds no TLS ticket secret: ${message}`, [{ path, message }]);
}

/** The tokens that stand in for site certificates on the plain loopback switch. */
async function plainLinkTokens(
  config: IotdrConfig,
  stateDir: string,
): Promise<{ replicator: string; analytics: string }> {
  // A configured replicator token file is provisioned by the operator on every host; the default
  // one is made here, and regions sharing a state directory share it.
  const replicator =
    config.replication.tokenFile === undefined
      ? await loadOrCreateToken(stateDir, replicatorTokenPath(config, stateDir))
      : await readSecretFile(replicatorTokenPath(config, stateDir));
  return { replicator, analytics: await loadOrCreateToken(stateDir, analyticsTokenPath(stateDir)) };
}

function missingAgent(peer: string): never {
  throw new Error(`no site agent for region ${peer} over mutual TLS`);
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
  const ticketSecret = await loadOrCreateTlsTicketSecret(stateDir);
  const adminToken = await loadOrCreateAdminToken(stateDir);
  const listenHost = options.listen?.host ?? region.address;
  // Over mutual TLS peers know this region by its site certificate; the replicator's and analytics'
  // tokens exist only on the plain loopback switch, where they stand in for site certificates.
  const links = await siteLinks(
    config,
    stateDir,
    { kind: 'region', name: region.name },
    {
      addresses: [region.address, listenHost],
    },
  );
  const linkTokens = links.tls === undefined ? await plainLinkTokens(config, stateDir) : undefined;
  const store = await openStore(region, stateDir);
  await store.init();
  const service = regionRegistryService({ store, region: region.name, ca });
  const metrics = regionMetrics(region.name);
  const r = config.replication;
  const peers = r.enabled
    ? config.regions
        .filter((p) => p.name !== region.name)
        .map((p) => ({ name: p.name, apiUrl: apiUrlOf(config, p) }))
    : [];
  const replication = new Replication({
    service,
    peers,
    credentials:
      linkTokens === undefined
        ? { agentFor: (peer) => links.agentFor({ kind: 'region', name: peer }) ?? missingAgent(peer) }
        : { token: linkTokens.replicator },
    metrics,
    ...(r.tokensFrom === undefined ? {} : { tokensFrom: r.tokensFrom }),
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
  // Everything started so far, closed in reverse order on a failed start and on stop.
  const closers = new Closers(logger);
  closers.add(() => store.close());
  closers.add(async () => links.close());
  try {
    await service.init();
    const bootstrap: ReadonlyArray<readonly [string, string, 'admin' | 'replicator' | 'reader', string]> = [
      [adminToken, 'admin', 'admin', adminTokenPath(stateDir)],
      ...(linkTokens === undefined
        ? []
        : ([
            [linkTokens.replicator, 'replicator', 'replicator', replicatorTokenPath(config, stateDir)],
            [linkTokens.analytics, 'analytics', 'reader', analyticsTokenPath(stateDir)],
          ] as const)),
    ];
    for (const [token, name, role, file] of bootstrap) {
      // A token deleted through the API stays deleted: its file does not bring it back.
      if ((await service.ensureToken(token, name, role)) === 'deleted')
        logger.warn(
          { token: name, file },
          `the ${name} token in ${file} was deleted through the API and is not made again; move the file away to make a new one`,
        );
    }
    const regionDir = join(stateDir, 'regions', region.name);
    const bus = await openRegionBus({
      config,
      region,
      stateDir,
      tls: links.tls,
      metrics,
      logger: logger.child({ component: 'events' }),
    });
    closers.add(() => bus.close());
    const deadLetters = await DeadLetterStore.open(join(regionDir, 'rules.db'));
    closers.add(async () => deadLetters.close());

    // Tests listen on port 0 for the API; the MQTT listeners then take free ports too.
    const ephemeral = options.listen !== undefined;
    const mqttListen = brokerListenOf(region, options.listen?.host, ephemeral);
    const redis = await regionRedis(region, stateDir);
    const workers = config.broker.workers;
    const nodes =
      redis !== undefined && workers > 1
        ? brokerWorkers(
            { config, stateDir, region: region.name, listen: mqttListen, count: workers },
            logger.child({ component: 'broker-workers' }),
          )
        : undefined;
    const broker = await createBroker({
      ...regionBrokerOptions(config, region, mqttListen, ticketSecret),
      service,
      ca,
      ...(redis === undefined ? {} : { cluster: { ...redis, ...(nodes === undefined ? {} : { nodes }) } }),
      logger: logger.child({ component: 'broker' }),
      metrics,
    });
    closers.add(() => broker.close());

    const rules = new RuleEngine({
      region: region.name,
      bus,
      deadLetters,
      service,
      metrics,
      logger: logger.child({ component: 'rules' }),
      rules: parseRuleDefinitions(config.rules),
      http: config.ruleHttp,
      publish: (topic, payload, o) =>
        broker.publish(topic, payload, { qos: o.qos === 1 ? 1 : 0, retain: o.retain }),
    });
    await rules.start();
    closers.add(() => rules.stop());
    const shadows = new ShadowTopics({
      service,
      publish: (topic, payload, o) => broker.publish(topic, payload, o),
      logger: logger.child({ component: 'shadows' }),
    });
    shadows.start();
    closers.add(() => shadows.stop());
    // On stop the broker closes before the engines it feeds (close is idempotent).
    closers.add(() => broker.close());
    // Runs before the device's PUBACK: an acknowledged message is on the bus. A broker node on
    // JetStream made the message's appends itself (busHandled): only the other actions run here.
    broker.onMessage(async (message) => {
      const done = message.busHandled;
      const scope =
        done === undefined
          ? {}
          : { actions: 'not-bus' as const, ...(done.eventId === undefined ? {} : { eventId: done.eventId }) };
      const [, taken] = await Promise.all([shadows.handle(message), rules.handle(message, scope)]);
      if (taken.busFailures > 0) throw new Error('the event bus did not take the message');
    });
    // Devices may connect only now that every message has somewhere to go.
    const mqtt = await broker.listen();

    const apiName = `${config.names.api}.${config.zone}`;
    const cncHost = options.listen?.host ?? region.address;
    const cnc = new CncServer({
      service,
      broker,
      logger: logger.child({ component: 'cnc' }),
      host: cncHost,
      port: ephemeral ? 0 : region.cnc.port,
      bodyLimit: config.api.bodyLimit,
      ...(region.cnc.tls ? { tls: await cncCertificate(ca, apiName, cncHost) } : {}),
    });
    closers.add(() => cnc.close());
    const cncUrl = await cnc.start();

    const health = new HealthService({
      serviceId: region.name,
      version: await packageVersion(),
      description: `iotdr region ${region.name}`,
      timeoutMs: config.health.timeoutMs,
      critical: config.health.critical,
      cacheMs: healthCacheWindowMs(config.health.cacheMs, config.failover.intervalMs),
      metrics,
    });
    const healthIdentity = () => ({ ...broker.healthIdentity(), url: mqttUrl(mqtt.tls) });
    health
      .add(brokerCheckpoint(healthIdentity))
      .add(
        brokerConnectCheckpoint(healthIdentity, {
          everyMs: config.health.connectEveryMs,
          timeoutMs: config.health.connectTimeoutMs,
        }),
      )
      .add(registryCheckpoint(service))
      .add(
        replicationCheckpoint(replication, {
          maxLagMs: config.health.maxLagMs,
          maxLagChanges: config.health.maxLagChanges,
          // A healthy link answers at least every long poll.
          maxContactAgeMs: Math.max(DEFAULT_MAX_CONTACT_AGE_MS, 2 * r.waitMs + 5000),
        }),
      )
      .add(eventsCheckpoint(bus, region.name, service.clock))
      .add(cncCheckpoint(cnc, service, (topic) => broker.publish(topic, '', { qos: 0 }), ca.certificatePem));
    if (config.analytics.regionCheck) {
      // Analytics says whether it ingests this region's bus within its lag threshold.
      const agent = links.agentFor({ kind: 'analytics', name: ANALYTICS_SITE });
      health.add(
        httpCheckpoint({
          name: 'analytics-ingest',
          component: 'analytics',
          url: `${analyticsUrlOf(config)}/v1/ingest/${region.name}/health`,
          ...(agent === undefined ? {} : { agent }),
        }),
      );
    }
    // A check may watch a service with a public certificate or one the platform's CA signed (the
    // demo service on the region's own API, which `iotdr drill` watches): both are trusted.
    const checkAgent = new Agent({ keepAlive: true, ca: [...rootCertificates, ca.certificatePem] });
    closers.add(() => checkAgent.destroy());
    for (const check of config.health.checks) {
      // Each region watches its own instance of the service.
      const host = region.address.includes(':') ? `[${region.address}]` : region.address;
      const url = check.url.replaceAll(REGION_PLACEHOLDER, region.name).replaceAll(ADDRESS_PLACEHOLDER, host);
      health.add(
        httpCheckpoint({ ...check, url, ...(url.startsWith('https:') ? { agent: checkAgent } : {}) }),
      );
    }

    // Closed before the broker (closers run in reverse): the health session ends as a client would.
    closers.add(() => health.close());

    const faults = new RegionFaults({
      enabled: options.faults === true,
      targets: {
        crashBroker: () => broker.close(),
        stopCnc: () => cnc.unlisten(),
        restoreCnc: () => cnc.listen(),
      },
      logger: logger.child({ component: 'faults' }),
    });

    const app = await buildRegistryApi({
      service,
      logger,
      ...(links.tls === undefined ? {} : { site: links.tls }),
      bodyLimit: config.api.bodyLimit,
      metrics,
      routes: [
        snapshotRoutes(service),
        digestRoutes(service),
        replicationRoutes(replication),
        brokerRoutes(broker, {
          // Control relays its notice and disconnect through this region to a peer it cannot reach.
          peerOf: (name) => {
            const peer = config.regions.find((p) => p.name === name && p.name !== region.name);
            if (peer === undefined) return undefined;
            const agent = links.agentFor({ kind: 'region', name });
            return { url: apiUrlOf(config, peer), ...(agent === undefined ? {} : { agent }) };
          },
        }),
        shadowRoutes(service),
        eventRoutes(bus, service),
        ruleRoutes(rules),
        healthRoutes(health),
        faultRoutes(faults),
      ],
      ...(nodes?.metrics === undefined ? {} : { moreMetrics: nodes.metrics }),
      liveInfo: () => ({
        cnc: cncUrl,
        mqtt: mqttUrl(mqtt.tls),
        ...(mqtt.token ? { mqttToken: mqttUrl(mqtt.token) } : {}),
      }),
    });
    // The API closes first: no request may reach a component that is already closed.
    closers.add(() => app.close());
    const listen = options.listen ?? { host: region.address, port: region.api.port };
    await app.listen({ host: listen.host, port: listen.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : region.api.port;
    const apiUrl = baseUrl(listenHost, port, links.tls === undefined ? 'http' : 'https');
    logger.info({ apiUrl, mqtt: mqttUrl(mqtt.tls), store: store.engine }, `region ${region.name} serving`);
    replication.start();
    closers.add(() => replication.stop());
    return {
      name: region.name,
      apiUrl,
      mqttUrl: mqttUrl(mqtt.tls),
      ...(mqtt.token ? { mqttTokenUrl: mqttUrl(mqtt.token) } : {}),
      cncUrl,
      cnc,
      faults,
      service,
      app,
      ca,
      replication,
      broker,
      bus,
      rules,
      health,
      stop: () => closers.close(),
    };
  } catch (error) {
    await closers.close();
    throw error;
  }
}

/** The command-and-control listener's certificate: `api.<zone>`, and its address when it is an IP. */
async function cncCertificate(
  ca: CertificateAuthority,
  apiName: string,
  host: string,
): Promise<{ certPem: string; keyPem: string }> {
  const issued = await ca.issueServerCertificate(
    isIP(host) === 0
      ? { commonName: apiName, dnsNames: [apiName], ipAddresses: [] }
      : { commonName: apiName, dnsNames: [apiName], ipAddresses: [host] },
  );
  return { certPem: issued.certificatePem, keyPem: issued.privateKeyPem };
}

function mqttUrl(address: { host: string; port: number }): string {
  return `mqtts://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
}

/**
 * The `events` checkpoint: appends a probe event to the bus and reads it back by its offset. The
 * probe's source is `health`, so consumers of device data can skip it.
 */
function eventsCheckpoint(bus: EventBus, region: string, clock: Clock) {
  return customCheckpoint(
    'events',
    'events',
    async () => {
      const id = uuidv7(clock.now());
      const { offset } = await bus.append({
        id,
        time: clock.now(),
        source: { type: 'health' },
        topic: `$iotdr/health/${region}/events`,
        payload: { type: 'json', value: { probe: id } },
      });
      const read = await bus.read({ from: offset, limit: 1 });
      if (read.events[0]?.id !== id)
        throw new Error(`appended event ${id} at offset ${offset} did not read back`);
    },
    { measurement: 'appendRead' },
  );
}

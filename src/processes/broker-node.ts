/**
 * Composition of a region's broker beyond one process (docs/broker.md, "Workers and hosts"): the
 * options every broker process of a region shares, a broker node started from the configuration
 * and the state directory (a worker, or a host behind the region's address), and the workers
 * that run on every core of the region's host and share its ports (`node:cluster`).
 */
import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { collectDefaultMetrics, type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';
import {
  type BrokerAddresses,
  type BrokerNode,
  type BrokerOptions,
  createBrokerNode,
  type LocalHandler,
  type NodeRunner,
  parseRequestTopic,
} from '../broker/index.js';
import { type Logger, moduleEntry } from '../common/index.js';
import {
  type IotdrConfig,
  type RegionConfig,
  readSecretFile,
  redisPasswordFilePath,
  regionByName,
} from '../config/index.js';
import type { EventBus } from '../events/index.js';
import { loadOrCreateCa } from '../pki/index.js';
import type { RegistryService } from '../registry/index.js';
import { DeadLetterStore, parseRuleDefinitions, RuleEngine } from '../rules/index.js';
import { brokerNodeNoRedis, brokerWorkerStartFailed } from './errors.js';
import { openRegionBus } from './event-bus.js';
import { loadOrCreateTlsTicketSecret, openStore } from './region.js';
import { regionRegistryService } from './registry.js';
import { siteCredentials } from './sites.js';

/** Where a region's broker listens: the configured address and ports, or free ports (tests). */
export interface BrokerListen {
  host: string;
  port: number;
  tokenPort: number;
}

/** The configured listen address and ports of a region's broker; `ephemeral` asks for free ports. */
export function brokerListenOf(
  region: RegionConfig,
  host: string | undefined,
  ephemeral: boolean,
): BrokerListen {
  return {
    host: host ?? region.address,
    port: ephemeral ? 0 : region.mqtt.port,
    tokenPort: ephemeral ? 0 : region.mqtt.tokenPort,
  };
}

/** The broker options every process of a region's broker shares (the hub adds service, CA, logger, cluster). */
export function regionBrokerOptions(
  config: IotdrConfig,
  region: RegionConfig,
  listen: BrokerListen,
  ticketSecret: Buffer,
): Pick<
  BrokerOptions,
  'region' | 'zone' | 'mqttName' | 'apiName' | 'host' | 'port' | 'tokenListener' | 'limits' | 'tlsTickets'
> {
  const b = config.broker;
  return {
    region: region.name,
    zone: config.zone,
    mqttName: `${config.names.mqtt}.${config.zone}`,
    apiName: `${config.names.api}.${config.zone}`,
    host: listen.host,
    port: listen.port,
    ...(b.tokenAuth ? { tokenListener: { port: listen.tokenPort } } : {}),
    limits: {
      maxConnections: b.maxConnections,
      connectionsPerSecondPerAddress: b.connectionsPerSecondPerAddress,
      maxPayloadBytes: b.maxPayloadBytes,
      maxTopicLength: b.maxTopicLength,
      maxTopicLevels: b.maxTopicLevels,
      connectTimeoutMs: b.connectTimeoutMs,
    },
    tlsTickets: { secret: ticketSecret, rotateMs: b.tlsTickets.rotateHours * 3_600_000 },
  };
}

/** The region's Redis as the broker takes it, with its password read from its file; undefined without one. */
export async function regionRedis(
  region: RegionConfig,
  stateDir: string,
): Promise<{ redis: string; password?: string } | undefined> {
  if (region.redis === undefined) return undefined;
  const file = redisPasswordFilePath(region, stateDir);
  return file === undefined
    ? { redis: region.redis.url }
    : { redis: region.redis.url, password: await readSecretFile(file) };
}

export interface BrokerNodeSpec {
  config: IotdrConfig;
  stateDir: string;
  /** The region the node serves. */
  region: string;
  listen: BrokerListen;
  /** Unique in the region; default the region, the process id and a random suffix. */
  node?: string;
}

export interface RunningBrokerNode {
  node: BrokerNode;
  addresses: BrokerAddresses;
  /** The node's own metrics, labelled with its region and node id. */
  metrics: Registry;
  stop(): Promise<void>;
}

/** How often a broker node reads the API rules again from the region's store, in ms (it sees no commits). */
export const NODE_RULES_RELOAD_MS = 2_000;

/** A node's own part of device messages on JetStream, and how to stop it. */
interface NodeRules {
  local: LocalHandler;
  stop(): Promise<void>;
}

/**
 * The region's rules in a broker node on JetStream: the node appends to the region's stream
 * itself, with the region's site credentials, and hands to the hub only a message that needs more
 * (a shadow request, a matched rule's republish or HTTP action). Config rules, and API rules read
 * from the region's store every NODE_RULES_RELOAD_MS.
 */
async function nodeRules(
  config: IotdrConfig,
  region: RegionConfig,
  stateDir: string,
  service: RegistryService,
  metrics: Registry,
  logger: Logger,
): Promise<NodeRules> {
  const tls =
    config.links.mode === 'mutual-tls'
      ? await siteCredentials(
          config,
          stateDir,
          { kind: 'region', name: region.name },
          { addresses: [region.address] },
        )
      : undefined;
  // Never written: a node runs no HTTP action; the hub does, and keeps the region's dead letters.
  const deadLetters = await DeadLetterStore.open(':memory:');
  let bus: EventBus | undefined;
  let rules: RuleEngine | undefined;
  try {
    bus = await openRegionBus({
      config,
      region,
      stateDir,
      tls,
      logger: logger.child({ component: 'events' }),
    });
    rules = new RuleEngine({
      region: region.name,
      bus,
      deadLetters,
      service,
      metrics,
      logger: logger.child({ component: 'rules' }),
      rules: parseRuleDefinitions(config.rules),
      http: config.ruleHttp,
      publish: () => Promise.reject(new Error('a broker node does not republish; the hub does')),
    });
    await rules.start();
  } catch (error) {
    await rules?.stop();
    await bus?.close();
    deadLetters.close();
    throw error;
  }
  const [engine, stream] = [rules, bus];
  const timer = setInterval(() => {
    engine
      .reload()
      .catch((error: unknown) => logger.warn({ err: error }, 'API rules could not be read again'));
  }, NODE_RULES_RELOAD_MS);
  timer.unref();
  return {
    local: async (message) => {
      const taken = await engine.handle(message, { actions: 'bus' });
      if (taken.busFailures > 0) throw new Error('the event bus did not take the message');
      const toHub = taken.beyondBus || parseRequestTopic(message.topic) !== undefined;
      return taken.eventId === undefined ? { toHub } : { toHub, eventId: taken.eventId };
    },
    stop: async () => {
      clearInterval(timer);
      await engine.stop();
      await stream.close();
      deadLetters.close();
    },
  };
}

/**
 * Starts one broker node of a region from its configuration and state directory: its own server
 * certificate from the region's CA, the shared ticket secret, the region's registry store (read
 * only: the hub writes) and the region's Redis. With `events.engine: jetstream` it appends the
 * rules' events to the region's stream itself (nodeRules). Listens once the hub answered.
 */
export async function startBrokerNode(spec: BrokerNodeSpec, logger: Logger): Promise<RunningBrokerNode> {
  const region = regionByName(spec.config, spec.region);
  const redis = await regionRedis(region, spec.stateDir);
  if (redis === undefined) throw brokerNodeNoRedis(region.name);
  const ca = await loadOrCreateCa(join(spec.stateDir, 'pki'));
  const ticketSecret = await loadOrCreateTlsTicketSecret(spec.stateDir);
  const store = await openStore(region, spec.stateDir);
  await store.init();
  const id = spec.node ?? `${region.name}-${hostname()}-${process.pid}`;
  const metrics = new Registry();
  metrics.setDefaultLabels({ region: region.name, node: id });
  collectDefaultMetrics({ register: metrics, prefix: 'iotdr_' });
  let own: NodeRules | undefined;
  try {
    const service = regionRegistryService({ store, region: region.name });
    if (spec.config.events.engine === 'jetstream')
      own = await nodeRules(spec.config, region, spec.stateDir, service, metrics, logger);
    const node = await createBrokerNode({
      ...regionBrokerOptions(spec.config, region, spec.listen, ticketSecret),
      service,
      ca,
      logger,
      metrics,
      cluster: { ...redis, node: id },
      ...(own === undefined ? {} : { local: own.local }),
    });
    try {
      const addresses = await node.listen();
      logger.info({ node: node.id, mqtt: addresses.tls }, `broker node of ${region.name} serving`);
      const rules = own;
      return {
        node,
        addresses,
        metrics,
        stop: async () => {
          await node.close();
          await rules?.stop();
          await store.close();
        },
      };
    } catch (error) {
      await node.close();
      throw error;
    }
  } catch (error) {
    await own?.stop();
    await store.close();
    throw error;
  }
}

/** What the primary tells a worker, and what a worker answers (IPC). */
export type WorkerRequest =
  | { type: 'start'; spec: BrokerNodeSpec }
  | { type: 'metrics'; id: number }
  | { type: 'stop' };
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'metrics'; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { type: 'listening'; addresses: BrokerAddresses }
  | { type: 'failed'; message: string }
  | { type: 'stopped' };

/** How long a worker has to listen after it was forked, in ms. */
const WORKER_START_TIMEOUT_MS = 60_000;
/** How long a worker has to stop before it is killed, in ms. */
const WORKER_STOP_TIMEOUT_MS = 10_000;
/** Delay before a worker that died is replaced, in ms; doubled for each death in a row, up to the cap. */
const WORKER_RESTART_MS = 1_000;
const WORKER_RESTART_MAX_MS = 30_000;
/** A worker that served this long died on its own, not of its start: the delay starts over, in ms. */
const WORKER_STABLE_MS = 60_000;
/** How long /metrics waits for a worker's metrics, in ms. */
const WORKER_METRICS_TIMEOUT_MS = 2_000;

/**
 * The region's broker on `count` worker processes sharing its ports. This process accepts and hands
 * each connection to the next free worker (node:cluster's round robin: the kernel's own spread is
 * very uneven), so the TLS handshakes and the sessions spread over the cores; a worker that dies
 * is replaced.
 */
export function brokerWorkers(
  spec: Omit<BrokerNodeSpec, 'node'> & { count: number },
  logger: Logger,
): NodeRunner {
  const workers = new Map<number, Worker>();
  let closing = false;
  let metricsRequests = 0;
  /** Deaths in a row per worker index (a worker that cannot start must not be forked every second). */
  const deaths = new Map<number, number>();

  const fork = (index: number): Promise<BrokerAddresses> => {
    const entry = moduleEntry(import.meta.url, './broker-worker');
    cluster.setupPrimary({ exec: entry.url.pathname, execArgv: entry.execArgv });
    const worker = cluster.fork({ IOTDR_BROKER_WORKER: String(index) });
    workers.set(index, worker);
    const node = `${spec.region}-w${index}-${worker.process.pid ?? 0}`;
    // Every worker asks for the same address, a port of 0 included: node:cluster hands the n-th
    // listen(0) of every worker the same socket.
    const listen = spec.listen;
    const forkedAt = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        worker.kill();
        reject(
          brokerWorkerStartFailed(
            index,
            `broker worker ${index} did not listen within ${WORKER_START_TIMEOUT_MS} ms`,
          ),
        );
      }, WORKER_START_TIMEOUT_MS);
      worker.on('message', (reply: WorkerReply) => {
        // Sent once its IPC listener is in place: a message before that would be lost.
        if (reply.type === 'ready')
          worker.send({ type: 'start', spec: { ...spec, listen, node } } satisfies WorkerRequest);
        else if (reply.type === 'listening') {
          clearTimeout(timer);
          resolve(reply.addresses);
        } else if (reply.type === 'failed') {
          clearTimeout(timer);
          reject(brokerWorkerStartFailed(index, `broker worker ${index}: ${reply.message}`));
        }
      });
      worker.once('exit', (code, signal) => {
        clearTimeout(timer);
        workers.delete(index);
        reject(
          brokerWorkerStartFailed(
            index,
            `broker worker ${index} exited (${signal ?? code}) before it listened`,
          ),
        );
        if (closing) return;
        const inRow = Date.now() - forkedAt >= WORKER_STABLE_MS ? 0 : (deaths.get(index) ?? 0);
        deaths.set(index, inRow + 1);
        const delay = Math.min(WORKER_RESTART_MAX_MS, WORKER_RESTART_MS * 2 ** inRow);
        logger.error(
          { worker: index, code, signal, deathsInRow: inRow + 1 },
          `broker worker ${index} died; replacing it in ${delay} ms`,
        );
        setTimeout(() => {
          if (closing) return;
          fork(index).catch((error: Error) =>
            logger.error({ err: error.message }, 'broker worker replacement failed'),
          );
        }, delay).unref();
      });
    });
  };

  return {
    async listen() {
      const all = await Promise.all(Array.from({ length: spec.count }, (_, i) => fork(i)));
      const addresses = all[0];
      if (addresses === undefined) throw new Error('no broker worker');
      logger.info({ workers: spec.count, mqtt: addresses.tls }, 'broker workers serving');
      return addresses;
    },
    async metrics() {
      const answers = await Promise.all(
        [...workers.values()].map(
          (worker) =>
            new Promise<MetricObjectWithValues<MetricValue<string>>[] | undefined>((resolve) => {
              const id = ++metricsRequests;
              const timer = setTimeout(() => finish(undefined), WORKER_METRICS_TIMEOUT_MS);
              const onMessage = (reply: WorkerReply) => {
                if (reply.type === 'metrics' && reply.id === id) finish(reply.metrics);
              };
              const finish = (metrics: MetricObjectWithValues<MetricValue<string>>[] | undefined) => {
                clearTimeout(timer);
                worker.off('message', onMessage);
                resolve(metrics);
              };
              worker.on('message', onMessage);
              if (worker.isConnected()) worker.send({ type: 'metrics', id } satisfies WorkerRequest);
              else finish(undefined);
            }),
        ),
      );
      return answers.filter((a) => a !== undefined);
    },
    async close() {
      closing = true;
      await Promise.all(
        [...workers.values()].map(
          (worker) =>
            new Promise<void>((resolve) => {
              if (worker.isDead()) return resolve();
              const timer = setTimeout(() => worker.kill('SIGKILL'), WORKER_STOP_TIMEOUT_MS);
              worker.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              worker.send({ type: 'stop' } satisfies WorkerRequest);
            }),
        ),
      );
      workers.clear();
    },
  };
}

/**
 * Composition root of `iotdr nats --region R --server NAME`: one server of a region's NATS
 * (`regions[].nats.servers`) as a child process of Debian's nats-server, from a configuration file
 * the product writes (`natsServerConfig`) to `<state>/nats/<region>/<server>.conf`. JetStream keeps
 * the region's stream in `<state>/nats/<region>/<server>/`; a region of several servers makes them
 * one cluster, `iotdr-<region>`. Over mutual-TLS links the server shows its site certificate
 * (`urn:iotdr:site:nats:<region>.<server>`) and knows its clients by theirs: the region writes,
 * analytics reads, and no other certificate of the CA connects. On plain-loopback links both ports
 * are plain, and the client port takes anyone. Over either, the routes of a cluster authenticate
 * with the region's route secret (`<state>/secrets/nats-<region>.route`), and beside each store
 * directory `<server>.cluster.json` records the server set it was made for.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ConfigError, ensurePrivateDir, exists, isExecutable, writeFileAtomic } from '../common/index.js';
import {
  caCertPath,
  ensureStateDir,
  type IotdrConfig,
  loadOrCreateSecretFile,
  natsRouteSecretPath,
  natsSiteOf,
  type RegionConfig,
  siteCertificatePaths,
} from '../config/index.js';
import {
  findNatsServer,
  type NatsServerConfig,
  type NatsServerSpec,
  natsClientUrl,
  natsServerConfig,
} from '../events/index.js';
import type { SiteTls } from '../http/index.js';
import { CA_KEY_FILE, siteUri } from '../pki/index.js';
import { natsDataOfAnotherCluster, natsNotFound } from './errors.js';
import { peerAddresses, recordedSetOf, recordSet } from './etcd.js';
import { ANALYTICS_SITE } from './region.js';
import { siteCredentials } from './sites.js';

/** The region and its server NAME, or a ConfigError naming the regions or servers there are. */
function natsServerOf(
  config: IotdrConfig,
  regionName: string,
  serverName: string,
): { region: RegionConfig; server: NatsServerConfig } {
  const index = config.regions.findIndex((r) => r.name === regionName);
  const region = config.regions[index];
  if (region === undefined)
    throw new ConfigError(
      `--region ${regionName} is not a region of the configuration (${config.regions.map((r) => r.name).join(', ')})`,
      [{ path: 'regions', message: `a region named ${regionName}` }],
    );
  const servers = region.nats?.servers ?? [];
  const server = servers.find((s) => s.name === serverName);
  if (server) return { region, server };
  throw new ConfigError(
    servers.length === 0
      ? `--server ${serverName}: region ${regionName} has no NATS servers; list them in regions[${index}].nats.servers first`
      : `--server ${serverName} is not in regions[${index}].nats.servers (${servers.map((s) => s.name).join(', ')})`,
    [{ path: `regions.${index}.nats.servers`, message: `a server named ${serverName}` }],
  );
}

/** Where a server's files live: `<state>/nats/<region>/`, its `.conf` and its store directory. */
function natsDir(stateDir: string, region: string): string {
  return join(stateDir, 'nats', region);
}

/** Where a server's JetStream keeps its store: `<state>/nats/<region>/<server>/`. */
function natsStoreDir(stateDir: string, region: string, server: string): string {
  return join(natsDir(stateDir, region), server);
}

/**
 * The server set a store directory is made for: the cluster's name and every route
 * (`address:clusterPort`), none for a server alone. A store keeps the cluster it was made in (its
 * JetStream meta group and the peers of its streams), whatever the configuration says later: a
 * server of another set would wait for peers that never come, or bring back streams the others
 * have not.
 */
export interface NatsServerSet {
  cluster: string;
  routes: string[];
}

function natsServerSetOf(region: RegionConfig): NatsServerSet {
  const servers = region.nats?.servers ?? [];
  return {
    cluster: natsClusterName(region.name),
    routes: servers.length > 1 ? servers.map((s) => `${s.address}:${s.clusterPort}`) : [],
  };
}

function natsClusterName(region: string): string {
  return `iotdr-${region}`;
}

/** Where the set of a server's store is recorded: beside it, where nats-server does not look. */
function natsSetFile(stateDir: string, region: string, server: string): string {
  return join(natsDir(stateDir, region), `${server}.cluster.json`);
}

/** A server whose store belongs to another server set than the configuration's. */
export interface ForeignNatsData {
  region: string;
  server: string;
  storeDir: string;
  /** The set its store was made for. */
  recorded: NatsServerSet;
  /** The configuration's. */
  configured: NatsServerSet;
}

function sameSet(a: NatsServerSet, b: NatsServerSet): boolean {
  return a.cluster === b.cluster && a.routes.join(',') === b.routes.join(',');
}

/**
 * The server's store, when it holds JetStream's data (nats-server's `jetstream/` directory) of
 * another server set than the configuration's; undefined when it has none, or belongs to this set.
 */
async function foreignNatsDataOf(
  stateDir: string,
  region: RegionConfig,
  server: string,
): Promise<ForeignNatsData | undefined> {
  const storeDir = natsStoreDir(stateDir, region.name, server);
  const recorded = await recordedSetOf<NatsServerSet>(
    join(storeDir, 'jetstream'),
    natsSetFile(stateDir, region.name, server),
  );
  if (recorded === undefined) return undefined;
  const configured = natsServerSetOf(region);
  return sameSet(recorded, configured)
    ? undefined
    : { region: region.name, server, storeDir, recorded, configured };
}

/**
 * Checks, before the servers start, that each server's store belongs to its region's server set.
 * A store of another set is refused, except in the regions `remove` names: there every store of
 * the region (`<state>/nats/<region>/`, servers no longer listed included) is deleted, so that its
 * cluster starts afresh together rather than some of it rejoining an older one. Returns the
 * servers whose store was of another set, one per region.
 * @throws IotdrError IOTDR_NATS_DATA_OF_ANOTHER_CLUSTER for the first such server of a region
 * `remove` does not name.
 */
export async function checkNatsData(
  config: IotdrConfig,
  stateDir: string,
  remove: readonly string[],
): Promise<ForeignNatsData[]> {
  const removed: ForeignNatsData[] = [];
  for (const region of config.regions) {
    const servers = region.nats?.servers ?? [];
    const found = await Promise.all(servers.map((s) => foreignNatsDataOf(stateDir, region, s.name)));
    const first = found.find((f) => f !== undefined);
    if (first === undefined) continue;
    if (!remove.includes(region.name)) throw natsDataOfAnotherCluster(first);
    await rm(natsDir(stateDir, region.name), { recursive: true, force: true });
    removed.push(first);
  }
  return removed;
}

/**
 * Refuses a store of another server set, and records the set of a store about to be made (or made
 * before sets were recorded), before nats-server starts.
 * @throws IotdrError IOTDR_NATS_DATA_OF_ANOTHER_CLUSTER
 */
async function claimNatsData(stateDir: string, region: RegionConfig, server: string): Promise<void> {
  const foreign = await foreignNatsDataOf(stateDir, region, server);
  if (foreign) throw natsDataOfAnotherCluster(foreign);
  await recordSet(natsSetFile(stateDir, region.name, server), natsServerSetOf(region));
}

/**
 * The region's route secret: read, or made here (32 random bytes, base64url) by the first server of
 * the region to start on this state directory. Over mutual-TLS links a host without the CA's key is
 * a host of its own: there the secret must be the one the region's other servers use, so it is
 * never made there but copied by the operator.
 * @throws ConfigError when it is missing on a host without the CA's key.
 */
async function natsRouteSecret(config: IotdrConfig, stateDir: string, region: string): Promise<string> {
  const path = natsRouteSecretPath(stateDir, region);
  const caKey = join(stateDir, 'pki', CA_KEY_FILE);
  if (config.links.mode === 'mutual-tls' && !(await exists(path)) && !(await exists(caKey))) {
    const message =
      `no route secret for region ${region}'s NATS cluster at ${path}, and no CA key here (a host of ` +
      `its own): copy that file from the host where the region's first server started (mode 0600; docs/security.md)`;
    throw new ConfigError(message, [{ path, message: "the region's route secret, from the CA's host" }]);
  }
  await ensureStateDir(stateDir);
  return loadOrCreateSecretFile(path, () => randomBytes(32).toString('base64url'));
}

/** The server's client URL (`tls://` over mutual-TLS links). */
export function natsServerUrl(config: IotdrConfig, server: NatsServerConfig): string {
  return natsClientUrl(server.address, server.clientPort, config.links.mode === 'mutual-tls');
}

/** The server's site certificate and key (issued or renewed here when the CA's key is here). */
function natsServerCredentials(
  config: IotdrConfig,
  stateDir: string,
  region: RegionConfig,
  server: NatsServerConfig,
): Promise<SiteTls> {
  // Its peers dial it at its address, and on loopback see it call from 127.0.0.1.
  return siteCredentials(config, stateDir, natsSiteOf(region.name, server.name), {
    addresses: peerAddresses(server.address),
  });
}

/** How one server starts, its certificate made first over mutual-TLS links. */
async function natsServerSpec(
  config: IotdrConfig,
  stateDir: string,
  region: RegionConfig,
  server: NatsServerConfig,
): Promise<NatsServerSpec> {
  const storeDir = natsStoreDir(stateDir, region.name, server.name);
  await ensurePrivateDir(storeDir);
  const servers = region.nats?.servers ?? [];
  let tls: Pick<NatsServerSpec, 'tls' | 'clients'> = {};
  if (config.links.mode === 'mutual-tls') {
    await natsServerCredentials(config, stateDir, region, server);
    const paths = siteCertificatePaths(stateDir, natsSiteOf(region.name, server.name));
    tls = {
      tls: { caFile: caCertPath(stateDir), certFile: paths.cert, keyFile: paths.key },
      clients: {
        writers: [siteUri({ kind: 'region', name: region.name })],
        readers: [siteUri({ kind: 'analytics', name: ANALYTICS_SITE })],
      },
    };
  }
  return {
    name: server.name,
    address: server.address,
    clientPort: server.clientPort,
    storeDir,
    ...(servers.length > 1
      ? {
          cluster: {
            name: natsClusterName(region.name),
            clusterPort: server.clusterPort,
            routes: servers.map((s) => ({ address: s.address, clusterPort: s.clusterPort })),
            secret: await natsRouteSecret(config, stateDir, region.name),
          },
        }
      : {}),
    ...tls,
  };
}

/**
 * Whether a NATS server at `address:port` is up with JetStream on: it greets every client with an
 * `INFO {…}` line in clear, before any TLS, and that line says `"jetstream":true` once JetStream
 * runs. False when nothing listens, or the greeting does not come within `timeoutMs`.
 */
export function natsServerAnswers(address: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    let greeting = '';
    const done = (ready: boolean) => {
      socket.destroy();
      resolve(ready);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (chunk) => {
      greeting += chunk.toString('latin1');
      const end = greeting.indexOf('\r\n');
      if (end < 0) return greeting.length > 64 * 1024 ? done(false) : undefined;
      const line = greeting.slice(0, end);
      try {
        const info: unknown = line.startsWith('INFO ') ? JSON.parse(line.slice(5)) : undefined;
        done(
          typeof info === 'object' && info !== null && (info as { jetstream?: unknown }).jetstream === true,
        );
      } catch {
        done(false);
      }
    });
  });
}

/**
 * util-linux's setpriv: launched through it, nats-server is sent SIGTERM when `iotdr nats` dies,
 * even by SIGKILL, instead of living on with the server's ports and store.
 */
const SETPRIV = '/usr/bin/setpriv';

export interface NatsServerOptions {
  config: IotdrConfig;
  stateDir: string;
  /** The region whose NATS it is. */
  region: string;
  /** The server to run, one of the region's `nats.servers`. */
  server: string;
  /** Finds the nats-server binary; default `findNatsServer` (PATH, /usr/sbin, /usr/bin). */
  findBinary?: () => string | undefined;
}

export interface RunningNatsServer {
  readonly region: string;
  readonly name: string;
  /** Its client URL. */
  readonly url: string;
  readonly configFile: string;
  readonly storeDir: string;
  /** The nats-server process. */
  readonly pid: number | undefined;
  /** Resolves when nats-server has exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends nats-server a signal. */
  kill(signal: NodeJS.Signals): void;
  /**
   * Stops nats-server cleanly with SIGINT: on it nats-server 2.9 shuts down and exits with 0, on
   * SIGTERM it shuts down the same way but exits with 1.
   */
  stop(): void;
}

/**
 * Writes the server's configuration file and starts nats-server on it, its log on this process's
 * stderr. Resolves once nats-server runs, not once it answers: a server of a cluster waits for
 * its peers before JetStream is ready.
 * @throws IotdrError IOTDR_NATS_NOT_FOUND when no nats-server binary is installed,
 * IOTDR_NATS_DATA_OF_ANOTHER_CLUSTER when its store belongs to another server set; ConfigError for
 * a region or server the configuration does not list, or a route secret missing on a host without
 * the CA's key.
 */
export async function startNatsServer(options: NatsServerOptions): Promise<RunningNatsServer> {
  const { config, stateDir } = options;
  const { region, server } = natsServerOf(config, options.region, options.server);
  const binary = (options.findBinary ?? findNatsServer)();
  if (binary === undefined) throw natsNotFound();
  await claimNatsData(stateDir, region, server.name);
  const spec = await natsServerSpec(config, stateDir, region, server);
  const configFile = join(natsDir(stateDir, region.name), `${server.name}.conf`);
  await writeFileAtomic(configFile, natsServerConfig(spec), { mode: 0o600 });
  const args = ['-c', configFile];
  const [command, argv] = isExecutable(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'SIGTERM', '--', binary, ...args]]
    : [binary, args];
  const child: ChildProcess = spawn(command, argv, { stdio: ['ignore', 2, 2] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // A spawn that failed (no such file, no permission) reports through 'error' before any exit.
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const kill = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  return {
    region: region.name,
    name: server.name,
    url: natsServerUrl(config, server),
    configFile,
    storeDir: spec.storeDir,
    pid: child.pid,
    exited,
    kill,
    stop: () => kill('SIGINT'),
  };
}

/**
 * Composition root of `iotdr nats --region R --server NAME`: one server of a region's NATS
 * (`regions[].nats.servers`) as a child process of Debian's nats-server, from a configuration file
 * the product writes (`natsServerConfig`) to `<state>/nats/<region>/<server>.conf`. JetStream keeps
 * the region's stream in `<state>/nats/<region>/<server>/`; a region of several servers makes them
 * one cluster, `iotdr-<region>`. Over mutual-TLS links the server shows its site certificate
 * (`urn:iotdr:site:nats:<region>.<server>`) and knows its clients by theirs: the region writes,
 * analytics reads, and no other certificate of the CA connects. On plain-loopback links both ports
 * are plain, without authorization.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ConfigError, ensurePrivateDir, isExecutable, writeFileAtomic } from '../common/index.js';
import {
  caCertPath,
  type IotdrConfig,
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
import { siteUri } from '../pki/index.js';
import { natsNotFound } from './errors.js';
import { peerAddresses } from './etcd.js';
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
  const storeDir = join(natsDir(stateDir, region.name), server.name);
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
            name: `iotdr-${region.name}`,
            clusterPort: server.clusterPort,
            routes: servers.map((s) => ({ address: s.address, clusterPort: s.clusterPort })),
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
 * @throws IotdrError IOTDR_NATS_NOT_FOUND when no nats-server binary is installed; ConfigError for
 * a region or server the configuration does not list.
 */
export async function startNatsServer(options: NatsServerOptions): Promise<RunningNatsServer> {
  const { config, stateDir } = options;
  const { region, server } = natsServerOf(config, options.region, options.server);
  const binary = (options.findBinary ?? findNatsServer)();
  if (binary === undefined) throw natsNotFound();
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
  return {
    region: region.name,
    name: server.name,
    url: natsServerUrl(config, server),
    configFile,
    storeDir: spec.storeDir,
    pid: child.pid,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    },
  };
}

/**
 * Starts a throwaway NATS with JetStream from Debian's `nats-server`, one server or a cluster of
 * three, each launched with the product's configuration (`natsServerConfig`): a temporary
 * directory `iotdr-nats-*`, free client and cluster ports on 127.0.0.1, and by default mutual TLS
 * on client and cluster links with site certificates from a CA made for it (or a state
 * directory's); a cluster's routes authenticate with a secret made for it. Tests call `startNats()` once per file and `stop()` it in afterAll; a node can be
 * killed and started again on its store directory.
 *
 * When the binary is missing the caller skips with the returned reason; with CI=true that is an
 * error instead, so CI never goes green by skipping.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { waitUntil } from '../../src/common/index.js';
import {
  connectNats,
  findNatsServer,
  type NatsLink,
  type NatsServerSpec,
  natsClientUrl,
  natsServerConfig,
} from '../../src/events/index.js';
import { loadOrCreateCa, type SiteId, siteUri } from '../../src/pki/index.js';
import { skipReason } from './binaries.js';
import { freePorts } from './process.js';

const NOT_FOUND = 'nats-server not found: apt-get install nats-server';
/** How long the servers, or a restarted node, have to answer with JetStream ready. */
const READY_TIMEOUT_MS = 20_000;
const START_ATTEMPTS = 3;
/** The test client's site: regions are the bus's clients. */
const CLIENT_SITE: SiteId = { kind: 'region', name: 'test' };

export interface StartNatsOptions {
  /** Servers: 1, or a cluster of 3; default 1. */
  nodes?: 1 | 3;
  /** Mutual TLS on client and cluster links; default true. */
  tls?: boolean;
  /** A state directory whose CA (`<stateDir>/pki`) signs the servers' certificates; default the harness's own. */
  stateDir?: string;
  /**
   * With TLS: who may connect, by site URI (`NatsServerSpec.clients`). The harness's own client
   * (`urn:iotdr:site:region:test`, which `link()` uses) is always a writer. Default: any
   * certificate of the CA.
   */
  clients?: { writers: readonly string[]; readers: readonly string[] };
}

export interface NatsNodeHandle {
  readonly name: string;
  /** This server's client URL alone. */
  readonly url: string;
  readonly clientPort: number;
  readonly clusterPort: number | undefined;
  readonly running: boolean;
  readonly pid: number | undefined;
  /** Sends `signal` (default SIGKILL); resolves once the process exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the node again on its store directory and ports; resolves once it answers. */
  start(): Promise<void>;
}

export interface RunningNats {
  /** Every server's client URL. */
  servers: string[];
  /** How a test process connects: every server, mutual TLS with a client certificate when on. */
  link(name?: string): NatsLink;
  /** The CA that signed servers and the client (PEM); undefined without TLS. */
  caPem: string | undefined;
  nodes: NatsNodeHandle[];
  /** The cluster's name, with 3 nodes. */
  clusterName: string | undefined;
  /** Kills every server and removes the temporary directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Why NATS tests cannot run here (collect time), or undefined. Throws with CI=true. */
export function natsSkipReason(): string | undefined {
  return skipReason(findNatsServer() !== undefined, NOT_FOUND);
}

/** `nats-server --version`, for reports. */
export function natsVersion(): string {
  const binary = findNatsServer();
  if (binary === undefined) return 'not installed';
  return execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
}

function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function writePrivate(path: string, pem: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, pem, { mode: 0o600 });
}

class NodeExited extends Error {}

class Node implements NatsNodeHandle {
  readonly name: string;
  readonly url: string;
  readonly clientPort: number;
  readonly clusterPort: number | undefined;
  readonly #configFile: string;
  readonly #log: string;
  #child: ChildProcess | undefined;

  constructor(
    private readonly binary: string,
    readonly spec: NatsServerSpec,
    private readonly link: NatsLink,
    private readonly children: Set<ChildProcess>,
  ) {
    this.name = spec.name;
    this.url = natsClientUrl(spec.address, spec.clientPort, spec.tls !== undefined);
    this.clientPort = spec.clientPort;
    this.clusterPort = spec.cluster?.clusterPort;
    this.#configFile = join(dirname(spec.storeDir), `${spec.name}.conf`);
    this.#log = join(dirname(spec.storeDir), `${spec.name}.log`);
    // It holds the cluster's route secret.
    writeFileSync(this.#configFile, natsServerConfig(spec), { mode: 0o600 });
  }

  get running(): boolean {
    const child = this.#child;
    return (
      child !== undefined && child.pid !== undefined && child.exitCode === null && child.signalCode === null
    );
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  spawn(): void {
    const fd = openSync(this.#log, 'a');
    try {
      const child = spawn(this.binary, ['-c', this.#configFile], { stdio: ['ignore', fd, fd] });
      this.#child = child;
      this.children.add(child);
      child.once('exit', () => this.children.delete(child));
      child.on('error', () => undefined);
    } finally {
      closeSync(fd);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) return Promise.resolve();
    return new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  /** Resolves once this server answers a JetStream request (its cluster has a meta leader). */
  async answers(): Promise<void> {
    await waitUntil(
      async () => {
        if (!this.running)
          throw new NodeExited(`nats-server ${this.name} exited; its log:\n${tail(this.#log)}`);
        try {
          const nc = await connectNats({ ...this.link, servers: [this.url], timeoutMs: 500 });
          try {
            const jsm = await jetstreamManager(nc, { timeout: 1000 });
            await jsm.getAccountInfo();
            return true;
          } finally {
            await nc.close();
          }
        } catch {
          return false;
        }
      },
      {
        timeoutMs: READY_TIMEOUT_MS,
        what: `nats-server ${this.name} (${this.url}) to answer with JetStream`,
        intervalMs: 100,
        fatal: (error) => error instanceof NodeExited,
        timeoutError: (message) => new Error(`${message}; its log:\n${tail(this.#log)}`),
      },
    );
  }

  async start(): Promise<void> {
    if (this.running) throw new Error(`nats-server ${this.name} is running`);
    this.spawn();
    await this.answers();
  }
}

export async function startNats(options: StartNatsOptions = {}): Promise<RunningNats> {
  const binary = findNatsServer();
  if (binary === undefined) throw new Error(NOT_FOUND);
  const count = options.nodes ?? 1;
  const host = '127.0.0.1';
  const clients = options.clients && {
    writers: [siteUri(CLIENT_SITE), ...options.clients.writers],
    readers: options.clients.readers,
  };
  const dir = mkdtempSync(join(tmpdir(), 'iotdr-nats-'));
  const secret = randomBytes(32).toString('base64url');
  const names = Array.from({ length: count }, (_, i) => `nats-${i + 1}`);
  const children = new Set<ChildProcess>();
  const killAllSync = (): void => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.once('exit', killAllSync);

  let tls: { caFile: string; ca: string; cert: string; key: string } | undefined;
  if (options.tls !== false) {
    const ca = await loadOrCreateCa(join(options.stateDir ?? dir, 'pki'));
    for (const name of names) {
      const issued = await ca.issueSiteCertificate({
        site: { kind: 'nats', name },
        ipAddresses: [host],
        dnsNames: [],
      });
      writePrivate(join(dir, 'pki', `${name}.pem`), issued.certificatePem);
      writePrivate(join(dir, 'pki', `${name}.key`), issued.privateKeyPem);
    }
    const client = await ca.issueSiteCertificate({ site: CLIENT_SITE, ipAddresses: [], dnsNames: [] });
    const caFile = join(dir, 'pki', 'nats-ca.pem');
    writePrivate(caFile, ca.certificatePem);
    tls = { caFile, ca: ca.certificatePem, cert: client.certificatePem, key: client.privateKeyPem };
  }

  try {
    for (let attempt = 1; ; attempt++) {
      const ports = await freePorts(2 * count, host);
      const routes = names.map((_, i) => ({ address: host, clusterPort: ports[2 * i + 1] as number }));
      const servers = names.map((_, i) => natsClientUrl(host, ports[2 * i] as number, tls !== undefined));
      const link = (name = 'iotdr:test'): NatsLink => ({
        servers,
        name,
        ...(tls === undefined ? {} : { tls: { ca: tls.ca, cert: tls.cert, key: tls.key } }),
      });
      const nodes = names.map((name, i) => {
        const storeDir = join(dir, `${name}-${attempt}`, 'jetstream');
        mkdirSync(dirname(storeDir), { recursive: true });
        const spec: NatsServerSpec = {
          name,
          address: host,
          clientPort: ports[2 * i] as number,
          storeDir,
          ...(count > 1
            ? {
                cluster: {
                  name: `iotdr-test-${attempt}`,
                  clusterPort: ports[2 * i + 1] as number,
                  routes,
                  secret,
                },
              }
            : {}),
          ...(tls === undefined
            ? {}
            : {
                tls: {
                  caFile: tls.caFile,
                  certFile: join(dir, 'pki', `${name}.pem`),
                  keyFile: join(dir, 'pki', `${name}.key`),
                },
                ...(clients === undefined ? {} : { clients }),
              }),
        };
        return new Node(binary, spec, link(), children);
      });
      for (const node of nodes) node.spawn();
      try {
        await Promise.all(nodes.map((n) => n.answers()));
      } catch (error) {
        await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
        if (attempt < START_ATTEMPTS && error instanceof NodeExited) continue;
        throw error;
      }
      let stopped: Promise<void> | undefined;
      return {
        servers,
        link,
        caPem: tls?.ca,
        nodes,
        clusterName: count > 1 ? `iotdr-test-${attempt}` : undefined,
        stop() {
          stopped ??= (async () => {
            await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
            process.off('exit', killAllSync);
            rmSync(dir, { recursive: true, force: true });
          })();
          return stopped;
        },
      };
    }
  } catch (error) {
    killAllSync();
    process.off('exit', killAllSync);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

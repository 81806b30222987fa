/**
 * Starts a throwaway etcd cluster of 1, 3 or 5 members from Debian's `etcd-server`, each member
 * launched with the product's own flags (`etcdMemberArgs`): a temporary directory `iotdr-etcd-*`,
 * free client and peer ports on 127.0.0.1, and by default mutual TLS on both links with site
 * certificates from a CA made for the cluster. Tests call `startEtcd()` once per file and `stop()`
 * it in afterAll; a member can be killed and started again on its data directory.
 *
 * The temporary directory is laid out as a state directory: `pki/ca.pem` and `pki/ca.key` (so a
 * test can issue more certificates from the same CA), `pki/sites/etcd-<member>.pem` and `.key`,
 * each member's data in `<member>.etcd` and its log (etcd's stderr) in `<member>.log`.
 *
 * When the binary is missing the caller skips with the returned reason; with CI=true that is an
 * error instead, so CI never goes green by skipping.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { waitUntil } from '../../src/common/index.js';
import { caCertPath, siteCertificatePaths } from '../../src/config/index.js';
import { type EtcdMemberSpec, etcdClientUrl, etcdMemberArgs, findEtcd } from '../../src/control/index.js';
import { loadOrCreateCa, type SiteId } from '../../src/pki/index.js';
import { skipReason } from './binaries.js';
import { freePorts } from './process.js';

const NOT_FOUND = 'etcd not found: apt-get install etcd-server';
/** How long a cluster, or a restarted member, has to answer its health. */
const READY_TIMEOUT_MS = 20_000;
/** One health probe's own limit. */
const PROBE_TIMEOUT_MS = 1_000;
/** A port taken between picking and binding makes etcd exit: pick again, this many times in all. */
const START_ATTEMPTS = 3;
/** The test client's site: the control nodes are etcd's clients. */
const CLIENT_SITE: SiteId = { kind: 'control', name: 'test' };

export interface StartEtcdOptions {
  /** Members in the cluster; default 1. */
  members?: 1 | 3 | 5;
  /** Mutual TLS on client and peer links; default true. */
  tls?: boolean;
  /** The address every member listens on; default 127.0.0.1. */
  host?: string;
  /**
   * A state directory whose CA (`<stateDir>/pki`) signs the members' certificates, so a platform
   * made in it trusts them and they trust its sites; default a CA of the cluster's own.
   */
  stateDir?: string;
}

export interface EtcdMemberHandle {
  /** The member's name, also its site name (`urn:iotdr:site:etcd:<name>`). */
  readonly name: string;
  /** Its client URL alone, for a client that must talk to this member only. */
  readonly clientUrl: string;
  /** Its ports, for a configuration that lists the member. */
  readonly clientPort: number;
  readonly peerPort: number;
  /** The process id of its latest start (the member may have exited since). */
  readonly pid: number | undefined;
  /** Whether its process is running. */
  readonly running: boolean;
  /** Sends `signal` (default SIGKILL); resolves when the process has exited (at once for SIGSTOP and SIGCONT). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the member again on its data directory and ports; resolves when it answers its health. */
  start(): Promise<void>;
}

export interface RunningEtcd {
  /** Every member's client URL. */
  endpoints: string[];
  /** The CA that signed members and the client (PEM); undefined without TLS. */
  caPem: string | undefined;
  /** A client certificate (site `control:test`) the members accept; undefined without TLS. */
  client: { certPem: string; keyPem: string } | undefined;
  /** `pki/` of the temporary directory, holding the CA's certificate and key; undefined without TLS. */
  pkiDir: string | undefined;
  /** The `credentials` option of `new Etcd3(...)` for that client; undefined without TLS. */
  credentials: { rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer } | undefined;
  members: EtcdMemberHandle[];
  /** Kills every member and removes the temporary directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Why etcd tests cannot run here (collect time), or undefined. Throws with CI=true. */
export function etcdSkipReason(): string | undefined {
  return skipReason(findEtcd() !== undefined, NOT_FOUND);
}

interface Pki {
  caFile: string;
  caPem: string;
  clientCertPem: string;
  clientKeyPem: string;
}

/** A member's process exited before it answered: retried with other ports by `startEtcd`. */
class MemberExited extends Error {}

function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Whether GET /health says true within PROBE_TIMEOUT_MS. 3.4 answers true when the member has a leader and a quorum read succeeds. */
function healthy(clientUrl: string, pki: Pki | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const url = new URL('/health', clientUrl);
    const options = { timeout: PROBE_TIMEOUT_MS, agent: false as const };
    const req =
      pki === undefined
        ? httpRequest(url, options)
        : httpsRequest(url, { ...options, ca: pki.caPem, cert: pki.clientCertPem, key: pki.clientKeyPem });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 && (JSON.parse(body) as { health?: unknown }).health === 'true');
        } catch {
          resolve(false);
        }
      });
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Environment without ETCD_* variables, which etcd would read as flags. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ETCD_')));
}

class Member implements EtcdMemberHandle {
  readonly name: string;
  readonly clientUrl: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly log: string;
  #child: ChildProcess | undefined;

  constructor(
    private readonly binary: string,
    readonly spec: EtcdMemberSpec,
    private readonly pki: Pki | undefined,
    private readonly children: Set<ChildProcess>,
    private readonly isStopped: () => boolean,
  ) {
    this.name = spec.name;
    this.clientUrl = etcdClientUrl(spec.address, spec.clientPort, spec.tls !== undefined);
    this.clientPort = spec.clientPort;
    this.peerPort = spec.peerPort;
    this.log = join(dirname(spec.dataDir), `${spec.name}.log`);
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    const child = this.#child;
    // No pid: the spawn itself failed.
    return (
      child !== undefined && child.pid !== undefined && child.exitCode === null && child.signalCode === null
    );
  }

  spawn(): void {
    const fd = openSync(this.log, 'a');
    try {
      const child = spawn(this.binary, etcdMemberArgs(this.spec), {
        stdio: ['ignore', 'ignore', fd],
        env: cleanEnv(),
      });
      this.#child = child;
      this.children.add(child);
      child.once('exit', () => this.children.delete(child));
      // A failed spawn reports through 'error' (and leaves no pid); unheard, it would crash the test process.
      child.on('error', () => undefined);
    } finally {
      closeSync(fd);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) return Promise.resolve();
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      child.kill(signal);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  /** Resolves when this member answers its health; MemberExited when its process ended first. */
  async answers(): Promise<void> {
    await waitUntil(
      async () => {
        if (!this.running) {
          throw new MemberExited(
            `etcd member ${this.name} exited before it was healthy; its log ${this.log}:\n${tail(this.log)}`,
          );
        }
        return healthy(this.clientUrl, this.pki);
      },
      {
        timeoutMs: READY_TIMEOUT_MS,
        what: `etcd member ${this.name} (${this.clientUrl}) to be healthy`,
        intervalMs: 100,
        fatal: (error) => error instanceof MemberExited,
        timeoutError: (message) => new Error(`${message}; its log ${this.log}:\n${tail(this.log)}`),
      },
    );
  }

  async start(): Promise<void> {
    if (this.isStopped()) throw new Error(`etcd member ${this.name}: the cluster was stopped`);
    if (this.running) throw new Error(`etcd member ${this.name} is running (pid ${this.pid})`);
    for (let attempt = 1; ; attempt++) {
      this.spawn();
      try {
        await this.answers();
        return;
      } catch (error) {
        await this.kill('SIGKILL');
        // Its ports are fixed by the cluster: try again only if another process held one briefly.
        if (!(error instanceof MemberExited) || attempt >= START_ATTEMPTS || this.isStopped()) throw error;
      }
    }
  }
}

function writePrivate(path: string, pem: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, pem, { mode: 0o600 });
}

/** The cluster's CA in `<dir>/pki`, a site certificate per member and the test client's certificate. */
async function makePki(dir: string, names: readonly string[], host: string, stateDir?: string): Promise<Pki> {
  const ca = await loadOrCreateCa(join(stateDir ?? dir, 'pki'));
  const ip = isIP(host) !== 0;
  for (const name of names) {
    const site: SiteId = { kind: 'etcd', name };
    const issued = await ca.issueSiteCertificate({
      site,
      ipAddresses: ip ? [host] : [],
      dnsNames: ip ? [] : [host],
    });
    const paths = siteCertificatePaths(dir, site);
    writePrivate(paths.key, issued.privateKeyPem);
    writePrivate(paths.cert, issued.certificatePem);
  }
  const client = await ca.issueSiteCertificate({ site: CLIENT_SITE, ipAddresses: [], dnsNames: [] });
  return {
    caFile: caCertPath(stateDir ?? dir),
    caPem: ca.certificatePem,
    clientCertPem: client.certificatePem,
    clientKeyPem: client.privateKeyPem,
  };
}

function memberSpecs(
  dir: string,
  names: readonly string[],
  host: string,
  ports: readonly number[],
  token: string,
  pki: Pki | undefined,
): EtcdMemberSpec[] {
  const cluster = names.map((name, i) => ({ name, address: host, peerPort: ports[2 * i + 1] as number }));
  return names.map((name, i) => {
    const paths = siteCertificatePaths(dir, { kind: 'etcd', name });
    return {
      name,
      address: host,
      clientPort: ports[2 * i] as number,
      peerPort: ports[2 * i + 1] as number,
      dataDir: join(dir, `${name}.etcd`),
      cluster,
      clusterToken: token,
      ...(pki === undefined ? {} : { tls: { caFile: pki.caFile, certFile: paths.cert, keyFile: paths.key } }),
    };
  });
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<RunningEtcd> {
  const binary = findEtcd();
  if (binary === undefined) throw new Error(NOT_FOUND);
  const count = options.members ?? 1;
  const host = options.host ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'iotdr-etcd-'));
  const names = Array.from({ length: count }, (_, i) => `member-${i + 1}`);
  const children = new Set<ChildProcess>();
  let stopped = false;
  // Last resort when the test process exits without stop(): no etcd left behind.
  const killAllSync = (): void => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.once('exit', killAllSync);
  const discard = async (members: readonly Member[]): Promise<void> => {
    await Promise.all(members.map((m) => m.kill('SIGKILL')));
    for (const m of members) rmSync(m.spec.dataDir, { recursive: true, force: true });
  };

  try {
    const pki = options.tls === false ? undefined : await makePki(dir, names, host, options.stateDir);
    for (let attempt = 1; ; attempt++) {
      const ports = await freePorts(2 * count, host);
      // A fresh token per attempt: a member left over from a failed one can never join this one.
      const token = `${basename(dir)}-${attempt}`;
      const members = memberSpecs(dir, names, host, ports, token, pki).map(
        (spec) => new Member(binary, spec, pki, children, () => stopped),
      );
      for (const member of members) member.spawn();
      try {
        await Promise.all(members.map((m) => m.answers()));
      } catch (error) {
        await discard(members);
        if (error instanceof MemberExited && attempt < START_ATTEMPTS) continue;
        throw error;
      }
      let stopping: Promise<void> | undefined;
      return {
        endpoints: members.map((m) => m.clientUrl),
        caPem: pki?.caPem,
        client: pki === undefined ? undefined : { certPem: pki.clientCertPem, keyPem: pki.clientKeyPem },
        pkiDir: pki === undefined ? undefined : join(options.stateDir ?? dir, 'pki'),
        credentials:
          pki === undefined
            ? undefined
            : {
                rootCertificate: Buffer.from(pki.caPem),
                certChain: Buffer.from(pki.clientCertPem),
                privateKey: Buffer.from(pki.clientKeyPem),
              },
        members,
        stop() {
          stopping ??= (async () => {
            stopped = true;
            await Promise.all(members.map((m) => m.kill('SIGKILL')));
            process.removeListener('exit', killAllSync);
            rmSync(dir, { recursive: true, force: true });
          })();
          return stopping;
        },
      };
    }
  } catch (error) {
    killAllSync();
    process.removeListener('exit', killAllSync);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

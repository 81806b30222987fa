/**
 * Composition root of `iotdr etcd --member NAME`: one member of `control.etcd.members` as a child
 * process of Debian's etcd (`etcd-server`), launched with the product's flags (`etcdMemberArgs`).
 * Its data lives in `<state>/etcd/<member>`, and beside it `<member>.cluster.json` records the
 * member set that data was made for; over mutual-TLS links it shows its site certificate
 * (`urn:iotdr:site:etcd:<member>`, issued and renewed like every process's) to clients and peers
 * and accepts only certificates of the platform's CA; on plain-loopback links both ports are HTTP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  ConfigError,
  ensurePrivateDir,
  exists,
  isExecutable,
  readIfExists,
  writeFileAtomic,
} from '../common/index.js';
import {
  caCertPath,
  type EtcdMemberConfig,
  type IotdrConfig,
  linkScheme,
  siteCertificatePaths,
} from '../config/index.js';
import {
  type EtcdMemberSpec,
  etcdClientUrl,
  etcdMemberArgs,
  etcdPeerUrl,
  findEtcd,
} from '../control/index.js';
import type { SiteTls } from '../http/index.js';
import type { SiteId } from '../pki/index.js';
import { etcdDataOfAnotherCluster, etcdNotFound } from './errors.js';
import { siteCredentials } from './sites.js';

/** An etcd member's site: `urn:iotdr:site:etcd:<member>`. */
export function etcdSiteOf(member: string): SiteId {
  return { kind: 'etcd', name: member };
}

/** Where a member keeps its data: `<state>/etcd/<member>`. */
function etcdDataDir(stateDir: string, member: string): string {
  return join(stateDir, 'etcd', member);
}

/**
 * The token that keeps members of two fleets' clusters from joining each other: the same for
 * every member of one configuration (its zone and key prefix).
 */
function etcdClusterToken(config: IotdrConfig): string {
  return `iotdr:${config.zone}:${config.control.etcd.prefix}`;
}

/**
 * The member set a member's data is made for: what etcd bootstraps a cluster from (its token, and
 * every member's name and peer URL). A data directory that holds a member keeps the cluster it
 * was made in, whatever the flags say later: a member of another set would wait for peers that
 * never come, or be refused by the others as a member of another cluster.
 */
export interface EtcdCluster {
  token: string;
  /** `name=peerUrl`, as in etcd's --initial-cluster. */
  members: string[];
}

function etcdClusterOf(config: IotdrConfig): EtcdCluster {
  const tls = linkScheme(config) === 'https';
  return {
    token: etcdClusterToken(config),
    members: config.control.etcd.members.map((m) => `${m.name}=${etcdPeerUrl(m.address, m.peerPort, tls)}`),
  };
}

/**
 * The set of servers a data directory was made for, as `file` beside it records it: undefined
 * when the directory holds no data (no `marker`), or its set was not recorded (data made before
 * sets were, which is taken to be the configured set's).
 */
export async function recordedSetOf<T>(marker: string, file: string): Promise<T | undefined> {
  if (!(await exists(marker))) return undefined;
  const text = await readIfExists(file);
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

/** Records in `file` the set of servers a data directory is made for, unless it says so already. */
export async function recordSet(file: string, set: unknown): Promise<void> {
  const text = `${JSON.stringify(set)}\n`;
  if ((await readIfExists(file)) !== text) await writeFileAtomic(file, text, { mode: 0o600 });
}

/** Where the member set of a member's data is recorded: beside it, where etcd does not look. */
function etcdClusterFile(stateDir: string, member: string): string {
  return join(stateDir, 'etcd', `${member}.cluster.json`);
}

function sameCluster(a: EtcdCluster, b: EtcdCluster): boolean {
  return a.token === b.token && a.members.join(',') === b.members.join(',');
}

/** A member whose data belongs to another member set than the configuration's. */
export interface ForeignEtcdData {
  member: string;
  dataDir: string;
  /** The set its data was made for. */
  recorded: EtcdCluster;
  /** The configuration's. */
  configured: EtcdCluster;
}

/**
 * The member's data, when it holds a member (etcd's `member/` directory) of another member set than
 * the configuration's; undefined when it has none, or belongs to this set. Data made before the set
 * was recorded is taken to be this set's.
 */
async function foreignDataOf(
  config: IotdrConfig,
  stateDir: string,
  member: string,
): Promise<ForeignEtcdData | undefined> {
  const dataDir = etcdDataDir(stateDir, member);
  const recorded = await recordedSetOf<EtcdCluster>(
    join(dataDir, 'member'),
    etcdClusterFile(stateDir, member),
  );
  if (recorded === undefined) return undefined;
  const configured = etcdClusterOf(config);
  return sameCluster(recorded, configured) ? undefined : { member, dataDir, recorded, configured };
}

/**
 * Checks, before the members start, that each member's data belongs to the configuration's member
 * set. Data of another set is refused (`refuse`), or with `remove` the data of every member of the
 * configuration is deleted, so that the cluster starts afresh together rather than half of it
 * rejoining an older one. Returns the members whose data was of another set.
 * @throws IotdrError IOTDR_ETCD_DATA_OF_ANOTHER_CLUSTER with `refuse`, for the first such member.
 */
export async function checkEtcdData(
  config: IotdrConfig,
  stateDir: string,
  foreign: 'refuse' | 'remove',
): Promise<ForeignEtcdData[]> {
  const members = config.control.etcd.members;
  const found = (await Promise.all(members.map((m) => foreignDataOf(config, stateDir, m.name)))).filter(
    (f) => f !== undefined,
  );
  const [first] = found;
  if (first === undefined) return [];
  if (foreign === 'refuse') throw etcdDataOfAnotherCluster(first);
  for (const m of members) {
    await rm(etcdDataDir(stateDir, m.name), { recursive: true, force: true });
    await rm(etcdClusterFile(stateDir, m.name), { force: true });
  }
  return found;
}

/**
 * Refuses data of another member set, and records the set of data about to be made (or made before
 * the set was recorded), before etcd starts.
 * @throws IotdrError IOTDR_ETCD_DATA_OF_ANOTHER_CLUSTER
 */
async function claimEtcdData(config: IotdrConfig, stateDir: string, member: string): Promise<void> {
  const foreign = await foreignDataOf(config, stateDir, member);
  if (foreign) throw etcdDataOfAnotherCluster(foreign);
  await recordSet(etcdClusterFile(stateDir, member), etcdClusterOf(config));
}

/** The configured member NAME, or a ConfigError naming the members there are. */
function etcdMemberOf(config: IotdrConfig, name: string): EtcdMemberConfig {
  const members = config.control.etcd.members;
  const member = members.find((m) => m.name === name);
  if (member) return member;
  throw new ConfigError(
    members.length === 0
      ? `--member ${name}: control.etcd.members is empty; list the members there first`
      : `--member ${name} is not in control.etcd.members (${members.map((m) => m.name).join(', ')})`,
    [{ path: 'control.etcd.members', message: `a member named ${name}` }],
  );
}

/**
 * The addresses the certificate of a server with peers names (an etcd member, a NATS server): the
 * one it listens on, and the one it calls its peers from, which etcd checks against the certificate
 * a peer shows. On loopback the kernel sends from 127.0.0.1 whatever 127.x address is called, so a
 * server on 127.0.0.31 names both.
 */
export function peerAddresses(address: string): string[] {
  const loopbackV4 = isIP(address) === 4 && address.startsWith('127.');
  return loopbackV4 && address !== '127.0.0.1' ? [address, '127.0.0.1'] : [address];
}

/** The member's site certificate and key (issued or renewed here when the CA's key is here). */
export function etcdMemberCredentials(
  config: IotdrConfig,
  stateDir: string,
  member: EtcdMemberConfig,
): Promise<SiteTls> {
  return siteCredentials(config, stateDir, etcdSiteOf(member.name), {
    addresses: peerAddresses(member.address),
  });
}

/** The member's client URL (https over mutual-TLS links). */
export function etcdMemberUrl(config: IotdrConfig, member: EtcdMemberConfig): string {
  return etcdClientUrl(member.address, member.clientPort, linkScheme(config) === 'https');
}

/** How one member starts: its flags' values, its certificate made first over mutual-TLS links. */
async function etcdMemberSpec(config: IotdrConfig, stateDir: string, name: string): Promise<EtcdMemberSpec> {
  const member = etcdMemberOf(config, name);
  const dataDir = etcdDataDir(stateDir, member.name);
  await ensurePrivateDir(dataDir);
  let tls: EtcdMemberSpec['tls'];
  if (config.links.mode === 'mutual-tls') {
    await etcdMemberCredentials(config, stateDir, member);
    const paths = siteCertificatePaths(stateDir, etcdSiteOf(member.name));
    tls = { caFile: caCertPath(stateDir), certFile: paths.cert, keyFile: paths.key };
  }
  return {
    name: member.name,
    address: member.address,
    clientPort: member.clientPort,
    peerPort: member.peerPort,
    dataDir,
    cluster: config.control.etcd.members.map((m) => ({
      name: m.name,
      address: m.address,
      peerPort: m.peerPort,
    })),
    clusterToken: etcdClusterToken(config),
    ...(tls === undefined ? {} : { tls }),
  };
}

/**
 * util-linux's setpriv, present on every Debian: launched through it, etcd is sent SIGTERM when
 * `iotdr etcd` dies, even by SIGKILL, instead of living on with the member's ports and data.
 */
const SETPRIV = '/usr/bin/setpriv';

export interface EtcdMemberOptions {
  config: IotdrConfig;
  stateDir: string;
  /** The member to run, one of `control.etcd.members`. */
  member: string;
  /** Finds the etcd binary; default `findEtcd` (PATH, /usr/bin, /usr/sbin). */
  findBinary?: () => string | undefined;
}

export interface RunningEtcdMember {
  readonly name: string;
  /** Its client URL. */
  readonly url: string;
  readonly dataDir: string;
  /** The etcd process. */
  readonly pid: number | undefined;
  /** Resolves when etcd has exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends etcd a signal (SIGTERM: it stops cleanly). */
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts the member's etcd, its output (etcd logs to stderr) on this process's stderr. Resolves
 * once etcd runs, not once it is healthy: a member of several answers its health only when a
 * majority of them runs.
 * @throws IotdrError IOTDR_ETCD_NOT_FOUND when no etcd binary is installed,
 * IOTDR_ETCD_DATA_OF_ANOTHER_CLUSTER when its data belongs to another member set.
 */
export async function startEtcdMember(options: EtcdMemberOptions): Promise<RunningEtcdMember> {
  const { config, stateDir } = options;
  const member = etcdMemberOf(config, options.member);
  const binary = (options.findBinary ?? findEtcd)();
  if (binary === undefined) throw etcdNotFound();
  const spec = await etcdMemberSpec(config, stateDir, member.name);
  await claimEtcdData(config, stateDir, member.name);
  const args = etcdMemberArgs(spec);
  // etcd reads ETCD_* variables as flags, and refuses one that a flag also sets.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ETCD_')));
  const [command, argv] = isExecutable(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'SIGTERM', '--', binary, ...args]]
    : [binary, args];
  const child: ChildProcess = spawn(command, argv, { stdio: ['ignore', 2, 2], env });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // A spawn that failed (no such file, no permission) reports through 'error' before any exit.
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return {
    name: member.name,
    url: etcdMemberUrl(config, member),
    dataDir: spec.dataDir,
    pid: child.pid,
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

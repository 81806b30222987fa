/**
 * The platform spread over a network lab (netlab.ts), one host per process, for partition tests:
 * two regions, three etcd members and three control nodes, each in its own network namespace on
 * the lab's subnet, running the real `iotdr` from source (and Debian's etcd), mutual TLS on every
 * link. The test cuts and heals links between hosts with the lab, kills processes with signals,
 * and asks questions through a probe process in a host of its own (lab-probe.ts), since the lab
 * cannot be reached from the test's own namespace.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitUntil } from '../../src/common/index.js';
import { etcdMemberArgs, findEtcd } from '../../src/control/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { loadOrCreateAdminToken, loadOrCreateTlsTicketSecret } from '../../src/processes/index.js';
import { type LabHost, NetLab } from './netlab.js';
import { ROOT } from './process.js';

export const REGIONS = ['us-east', 'us-west'] as const;
export const NODES = ['ctl-a', 'ctl-b', 'ctl-c'] as const;
export const MEMBERS = ['etcd-1', 'etcd-2', 'etcd-3'] as const;
const API_PORT = 8080;
/** Node's arguments that run `iotdr` from source. */
export const ROOT_CLI = ['--import', 'tsx', `${ROOT}src/cli/bin.ts`];
const DNS_PORT = 53;

export interface LabProcess {
  readonly name: string;
  readonly host: LabHost;
  readonly log: string;
  child: ChildProcess;
  /** SIGKILL by default; resolves once it exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same arguments. */
  restart(): void;
  /** Its log so far. */
  output(): string;
}

export interface LabPlatformOptions {
  /** The failover section. */
  failover: Record<string, unknown>;
  /** The lease of a control node, ms. */
  leaseTtlMs: number;
  /** More configuration (merged at the top level). */
  config?: Record<string, unknown>;
  /** More hosts to add (devices…). */
  extraHosts?: string[];
  /** Run analytics in a host of its own (`analytics`), following both regions' buses. */
  analytics?: boolean;
}

/** Answers of the probe, one per command. */
type ProbeAnswer = { id: number; error?: string; [key: string]: unknown };
export type Sample = {
  at: number;
  dns: Record<string, string>;
  states: Record<string, { activeRegion?: string; epoch?: number; leads?: boolean; error?: string }>;
};

export class LabProbe {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (answer: ProbeAnswer) => void>();
  readonly samples: Sample[] = [];
  #next = 0;
  readonly ready: Promise<void>;

  constructor(child: ChildProcess) {
    this.#child = child;
    let ready: () => void = () => {};
    this.ready = new Promise((resolve) => {
      ready = resolve;
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let message: ProbeAnswer & { op?: string };
      try {
        message = JSON.parse(line);
      } catch {
        return;
      }
      if (message.op === 'ready') ready();
      else if (message.op === 'sample') this.samples.push(message as unknown as Sample);
      else this.#waiting.get(message.id)?.(message);
    });
  }

  #ask(command: Record<string, unknown>): Promise<ProbeAnswer> {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`the probe did not answer ${JSON.stringify(command)}`));
      }, 10_000);
      this.#waiting.set(id, (answer) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(answer);
      });
      this.#child.stdin?.write(`${JSON.stringify({ ...command, id })}\n`);
    });
  }

  async http(
    url: string,
    options: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
  ): Promise<{ status: number; body: any }> {
    const answer = await this.#ask({ op: 'http', url, ...options });
    if (answer.error !== undefined) throw new Error(`${url}: ${answer.error}`);
    return { status: answer.status as number, body: answer.body };
  }

  async dns(server: string, name = 'mqtt.iot.test'): Promise<string[]> {
    const answer = await this.#ask({ op: 'dns', server, name });
    if (answer.error !== undefined) throw new Error(`${server}: ${answer.error}`);
    return answer.addresses as string[];
  }

  async startSampling(options: {
    dns: string[];
    urls: string[];
    headers: Record<string, string>;
    everyMs: number;
  }) {
    await this.#ask({ op: 'sample', ...options });
  }

  async stopSampling(): Promise<void> {
    await this.#ask({ op: 'stop-sampling' });
  }
}

export interface LabPlatform {
  readonly lab: NetLab;
  readonly stateDir: string;
  readonly configPath: string;
  readonly adminToken: string;
  readonly hosts: ReadonlyMap<string, LabHost>;
  readonly processes: ReadonlyMap<string, LabProcess>;
  readonly probe: LabProbe;
  /** Base URL of a region's or a control node's API. */
  url(name: string): string;
  /** A control node's DNS server, `address:port`. */
  dns(node: string): string;
  /** Admin headers for the probe's requests. */
  readonly admin: Record<string, string>;
  /** The control nodes' states, through the probe. */
  states(): Promise<Map<string, any>>;
  /** The node that leads, as every answering node agrees; undefined while none does. */
  leader(): Promise<string | undefined>;
  /** Runs `iotdr ARGS --config FILE` in a host, with its log in the state directory. */
  iotdr(name: string, host: string, args: string[]): LabProcess;
  stop(): Promise<void>;
}

/** Starts every process and resolves once each answers; on failure stops them all and throws. */
export async function startLabPlatform(options: LabPlatformOptions): Promise<LabPlatform> {
  const etcd = findEtcd();
  if (etcd === undefined) throw new Error('etcd not found: apt-get install etcd-server');
  const lab = await NetLab.create();
  const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-lab-'));
  const processes = new Map<string, LabProcess>();
  const stop = async () => {
    await lab.destroy();
    await rm(stateDir, { recursive: true, force: true });
  };
  try {
    const hosts = new Map<string, LabHost>();
    for (const name of [
      ...REGIONS,
      ...MEMBERS,
      ...NODES,
      'probe',
      ...(options.analytics ? ['analytics'] : []),
      ...(options.extraHosts ?? []),
    ])
      hosts.set(name, await lab.addHost(name));
    const host = (name: string) => hosts.get(name) as LabHost;
    const ca = await loadOrCreateCa(join(stateDir, 'pki'));
    const adminToken = await loadOrCreateAdminToken(stateDir);
    await loadOrCreateTlsTicketSecret(stateDir);
    const logs = join(stateDir, 'logs');
    await mkdir(logs, { recursive: true });

    const config = {
      zone: 'iot.test',
      logging: { level: 'info' },
      regions: REGIONS.map((name, i) => ({
        name,
        priority: i + 1,
        address: host(name).address,
        api: { port: API_PORT },
        cnc: { port: 8090 },
        mqtt: { port: 8883 },
      })),
      replication: { waitMs: 500, retryBaseMs: 50, retryMaxMs: 500 },
      analytics: options.analytics
        ? { address: host('analytics').address, port: API_PORT, regionCheck: false }
        : { regionCheck: false },
      failover: options.failover,
      control: {
        nodes: NODES.map((name) => ({
          name,
          address: host(name).address,
          port: API_PORT,
          dnsPort: DNS_PORT,
        })),
        etcd: {
          members: MEMBERS.map((name) => ({
            name,
            address: host(name).address,
            clientPort: 2379,
            peerPort: 2380,
          })),
          leaseTtlMs: options.leaseTtlMs,
        },
      },
      ...options.config,
    };
    const configPath = join(stateDir, 'iotdr.json');
    await writeFile(configPath, JSON.stringify(config, null, 2));

    const launch = (name: string, hostName: string, command: string, args: string[]): LabProcess => {
      const log = join(logs, `${name}.log`);
      const start = (): ChildProcess => {
        const fd = openSync(log, 'a');
        try {
          return lab.spawn(hostName, command, args, {
            stdio: ['ignore', fd, fd],
            env: { ...process.env, IOTDR_HOME: stateDir },
            cwd: ROOT,
          });
        } finally {
          closeSync(fd);
        }
      };
      const p: LabProcess = {
        name,
        host: host(hostName),
        log,
        child: start(),
        async kill(signal = 'SIGKILL') {
          const child = p.child;
          if (child.exitCode !== null || child.signalCode !== null) return;
          const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          child.kill(signal);
          await gone;
        },
        restart() {
          p.child = start();
        },
        output: () => readFileSync(log, 'utf8'),
      };
      processes.set(name, p);
      return p;
    };
    const iotdr = (name: string, hostName: string, args: string[]) =>
      launch(name, hostName, process.execPath, [
        '--import',
        'tsx',
        `${ROOT}src/cli/bin.ts`,
        ...args,
        '--config',
        configPath,
      ]);

    const probeChild = lab.spawn(
      'probe',
      process.execPath,
      ['--import', 'tsx', `${ROOT}test/harness/lab-probe.ts`, join(stateDir, 'pki', 'ca.pem')],
      { stdio: ['pipe', 'pipe', 'inherit'], cwd: ROOT },
    );
    const probe = new LabProbe(probeChild);
    await probe.ready;

    const url = (name: string) => `https://${host(name).address}:${API_PORT}`;
    const answering = (name: string) =>
      waitUntil(
        async () => {
          const p = processes.get(name) as LabProcess;
          if (p.child.exitCode !== null) throw new Error(`${name} exited:\n${p.output()}`);
          return (await probe.http(`${url(name)}/livez`).catch(() => ({ status: 0 }))).status === 200;
        },
        { timeoutMs: 60_000, what: `${name} to answer`, fatal: () => true },
      );
    // The regions first: control nodes started before them would see the primary fail.
    for (const name of REGIONS) iotdr(name, name, ['region', '--name', name]);
    for (const name of REGIONS) await answering(name);
    if (options.analytics) {
      iotdr('analytics', 'analytics', ['analytics']);
      await answering('analytics');
    }

    // etcd members, each with its site certificate for its lab address.
    const cluster = MEMBERS.map((name) => ({ name, address: host(name).address, peerPort: 2380 }));
    for (const name of MEMBERS) {
      const issued = await ca.issueSiteCertificate({
        site: { kind: 'etcd', name },
        ipAddresses: [host(name).address],
        dnsNames: [],
      });
      const certFile = join(stateDir, 'pki', `etcd-${name}.pem`);
      const keyFile = join(stateDir, 'pki', `etcd-${name}.key`);
      await writeFile(certFile, issued.certificatePem);
      await writeFile(keyFile, issued.privateKeyPem, { mode: 0o600 });
      launch(
        name,
        name,
        etcd,
        etcdMemberArgs({
          name,
          address: host(name).address,
          clientPort: 2379,
          peerPort: 2380,
          dataDir: join(stateDir, 'etcd', name),
          cluster,
          clusterToken: 'iotdr-lab',
          tls: { caFile: join(stateDir, 'pki', 'ca.pem'), certFile, keyFile },
        }),
      );
    }
    for (const name of NODES) iotdr(name, name, ['control', '--node', name]);

    const admin = { authorization: `Bearer ${adminToken}` };
    const states = async () => {
      const out = new Map<string, any>();
      await Promise.all(
        NODES.map(async (node) => {
          try {
            const res = await probe.http(`${url(node)}/v1/failover/state`, { headers: admin });
            if (res.status === 200) out.set(node, res.body);
          } catch {
            // unreachable
          }
        }),
      );
      return out;
    };
    // Ready: every node answers /livez, and one node leads.
    for (const name of NODES) await answering(name);
    const leader = async () => {
      const seen = await states();
      const leading = [...seen.entries()].filter(([, s]) => s.control?.leads).map(([n]) => n);
      return leading.length === 1 ? leading[0] : undefined;
    };
    await waitUntil(async () => (await leader()) !== undefined, { timeoutMs: 30_000, what: 'a leader' });
    return {
      lab,
      stateDir,
      configPath,
      adminToken,
      hosts,
      processes,
      probe,
      url,
      dns: (node) => `${host(node).address}:${DNS_PORT}`,
      admin,
      states,
      leader,
      iotdr,
      stop,
    };
  } catch (error) {
    const logs = [...processes.values()]
      .map((p) => `--- ${p.name}\n${p.output().split('\n').slice(-15).join('\n')}`)
      .join('\n');
    await stop();
    throw new Error(`the lab platform did not start: ${(error as Error).message}\n${logs}`);
  }
}

/**
 * A network lab for partition tests: regions, control nodes and etcd members each get a network
 * namespace of their own, joined by one switch, and a test cuts and heals the links between them
 * for real. It needs root (network namespaces and iptables); `netlabSkipReason()` says why a lab
 * cannot be built here, and with CI=true throws instead.
 *
 * How a lab is wired (lab 1 of process 4242, three hosts):
 *
 *                      namespace iotdr-4242-1 (the switch)
 *        +---------------------------- br0 ----------------------------+
 *        |                              |                              |
 *        v1                             v2                             v3
 *        |  veth pair                   |                              |
 *        eth0 10.77.0.1/24              eth0 10.77.0.2/24              eth0 10.77.0.3/24
 *        iotdr-4242-1-us-east           iotdr-4242-1-eu-west           iotdr-4242-1-ctl-a
 *
 * Each veth pair is created straight across namespaces, its switch end a port of the bridge, its
 * host end `eth0` with the host's address; `lo` is up everywhere; `eth0` has no IPv6 address, so
 * the lab address is the only way between two hosts. A lab reaches neither the root namespace nor
 * another lab, so every lab uses the same subnet, and a fixed port is free in every fresh host.
 *
 * A cut is iptables DROP rules inside both hosts' namespaces (INPUT from the peer's address,
 * OUTPUT to it): packets vanish without an answer, open connections stall and resume on heal, as
 * in a real partition. `isolate` cuts a host from every other host, later ones included, with the
 * same rules; its `eth0` stays up (taking the link down would also drop its address's route, so
 * the host's own sends would fail at once with "network unreachable" instead of hanging).
 *
 * `destroy()` kills every process in the lab's namespaces and deletes them; it also runs when the
 * process exits, and `create()` first deletes the namespaces of earlier runs whose process died.
 */
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { findExecutable } from '../../src/common/index.js';
import { skipReason } from './binaries.js';

/** The first three octets of every lab's /24; hosts get .1, .2, … in the order they are added. */
const SUBNET = '10.77.0';
const MAX_HOSTS = 254;
/** Between SIGTERM to the processes the lab started and SIGKILL to all left in its namespaces, ms. */
const KILL_GRACE_MS = 1000;
/** Host names: short enough for a namespace name, and never the switch's. */
const HOST_NAME = /^[a-z][a-z0-9-]{0,23}$/;
/** `iotdr-<pid>-<lab>` and `iotdr-<pid>-<lab>-<host>`: the pid and the lab of a namespace name. */
const NAMESPACE = /^iotdr-(\d+)-([a-z0-9]+)(?:-|$)/;

export interface LabHost {
  /** As given to `addHost`, e.g. `us-east`. */
  readonly name: string;
  /** The host's network namespace, `iotdr-<pid>-<lab>-<name>`. */
  readonly ns: string;
  /** The host's address on the lab's subnet (IPv4, no prefix length). */
  readonly address: string;
}

export interface RunResult {
  /** The exit code; null when a signal ended the command. */
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Tools {
  ip: string;
  iptables: string;
}

function findBinary(name: string): string | undefined {
  return findExecutable(name, ['/usr/sbin', '/sbin', '/usr/bin']);
}

function findTools(): Tools | string {
  if (process.getuid?.() !== 0) return 'the network lab needs root (network namespaces, iptables)';
  const ip = findBinary('ip');
  if (ip === undefined) return 'ip not found: apt-get install iproute2';
  const iptables = findBinary('iptables');
  if (iptables === undefined) return 'iptables not found: apt-get install iptables';
  return { ip, iptables };
}

/** Why a lab cannot be built here, or undefined: adds (and deletes) a namespace, runs iptables in it. */
function probe(): string | undefined {
  const tools = findTools();
  if (typeof tools === 'string') return tools;
  const ns = `iotdr-${process.pid}-probe`;
  const added = spawnSync(tools.ip, ['netns', 'add', ns], { encoding: 'utf8' });
  if (added.status !== 0) return `ip netns add is not permitted here: ${added.stderr.trim()}`;
  try {
    const listed = spawnSync(tools.ip, ['netns', 'exec', ns, tools.iptables, '-w', '-S'], {
      encoding: 'utf8',
    });
    if (listed.status !== 0) return `iptables does not work in a network namespace: ${listed.stderr.trim()}`;
    return undefined;
  } finally {
    spawnSync(tools.ip, ['netns', 'delete', ns]);
  }
}

/** The probe's answer, once per process: it adds a namespace, so it is not repeated per test file. */
let probed: { reason: string | undefined } | undefined;

/** Why network-lab tests cannot run here (collect time), or undefined. Throws with CI=true. */
export function netlabSkipReason(): string | undefined {
  probed ??= { reason: probe() };
  return skipReason(probed.reason === undefined, probed.reason ?? '');
}

/** What a child wrote until it closed, and how it ended (code null when a signal ended it). */
function ended(child: ChildProcess): Promise<RunResult & { signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs `file`, feeding it `input`; resolves with its stdout, rejects with its stderr on failure. */
async function exec(file: string, args: readonly string[], input?: string): Promise<string> {
  const child = spawn(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  const result = ended(child);
  child.stdin?.end(input);
  const { code, signal, stdout, stderr } = await result;
  if (code === 0) return stdout;
  throw new Error(`${[file, ...args].join(' ')}: ${stderr.trim() || `exit ${code ?? signal}`}`);
}

function namespaceNames(ip: string): string[] {
  const listed = spawnSync(ip, ['netns', 'list'], { encoding: 'utf8' });
  // Lines are `name` or `name (id: 3)`.
  return (listed.stdout ?? '')
    .split('\n')
    .map((line) => line.trim().split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** SIGKILLs every process in namespace `ns`, then deletes it; quiet when it is gone already. */
function removeNamespace(ip: string, ns: string): void {
  const pids = spawnSync(ip, ['netns', 'pids', ns], { encoding: 'utf8' });
  for (const pid of (pids.stdout ?? '').split(/\s+/).filter((p) => p !== '')) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
  spawnSync(ip, ['netns', 'delete', ns], { stdio: 'ignore' });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The labs of this process that are not destroyed, and the number of the next one. */
const labs = { next: 1, live: new Set<string>() };

/**
 * Deletes the `iotdr-<pid>-*` namespaces left by processes that died without destroying their labs,
 * and those of this pid that no live lab of this process owns (a dead run whose pid came round
 * again), killing the processes still in them.
 */
function sweepLeftovers(ip: string): void {
  for (const ns of namespaceNames(ip)) {
    const match = NAMESPACE.exec(ns);
    if (match === null) continue;
    const pid = Number(match[1]);
    const stale = pid === process.pid ? !labs.live.has(match[2] ?? '') : !alive(pid);
    if (stale) removeNamespace(ip, ns);
  }
}

type HostRef = LabHost | string;

/** The unordered pair's key. */
function pairKey(a: string, b: string): string {
  return a < b ? `${a} ${b}` : `${b} ${a}`;
}

export class NetLab {
  /** The switch's namespace, and the prefix of every host's: `iotdr-<pid>-<lab>`. */
  readonly name: string;
  readonly #tools: Tools;
  readonly #id: string;
  readonly #hosts = new Map<string, LabHost>();
  /** Every namespace this lab added (or was adding), for teardown. */
  readonly #namespaces = new Set<string>();
  readonly #children = new Set<ChildProcess>();
  /** Pairs cut by `cut`, hosts cut off by `isolate`, and the pairs whose DROP rules are in place. */
  readonly #cuts = new Set<string>();
  readonly #isolated = new Set<string>();
  readonly #dropped = new Set<string>();
  /** Changes to hosts and rules run one at a time, in call order. */
  #queue: Promise<unknown> = Promise.resolve();
  #destroyed: Promise<void> | undefined;
  readonly #onExit = (): void => this.#teardownNow();

  private constructor(tools: Tools, id: string) {
    this.#tools = tools;
    this.#id = id;
    this.name = `iotdr-${process.pid}-${id}`;
  }

  /** A lab with its switch and no hosts. Throws when the tools are missing (see netlabSkipReason). */
  static async create(): Promise<NetLab> {
    const tools = findTools();
    if (typeof tools === 'string') throw new Error(tools);
    const id = String(labs.next++);
    labs.live.add(id);
    sweepLeftovers(tools.ip);
    const lab = new NetLab(tools, id);
    process.once('exit', lab.#onExit);
    try {
      lab.#namespaces.add(lab.name);
      await exec(tools.ip, ['netns', 'add', lab.name]);
      await exec(
        tools.ip,
        ['-n', lab.name, '-batch', '-'],
        'link set lo up\nlink add br0 type bridge\nlink set br0 up\n',
      );
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  get hosts(): readonly LabHost[] {
    return [...this.#hosts.values()];
  }

  /** Adds a host (`us-east`, `ctl-a`: lower case, digits, dashes) with the next address. */
  addHost(name: string): Promise<LabHost> {
    return this.#serial(async () => {
      if (!HOST_NAME.test(name)) throw new Error(`host name ${JSON.stringify(name)} is not ${HOST_NAME}`);
      if (this.#hosts.has(name)) throw new Error(`host ${name} is in the lab already`);
      const index = this.#hosts.size + 1;
      if (index > MAX_HOSTS) throw new Error(`a lab holds at most ${MAX_HOSTS} hosts`);
      const host: LabHost = { name, ns: `${this.name}-${name}`, address: `${SUBNET}.${index}` };
      const { ip } = this.#tools;
      this.#namespaces.add(host.ns);
      await exec(ip, ['netns', 'add', host.ns]);
      await exec(
        ip,
        ['-n', this.name, '-batch', '-'],
        `link add v${index} type veth peer name eth0 netns ${host.ns}\nlink set v${index} master br0 up\n`,
      );
      // No IPv6 address on eth0 (addrgenmode none): the lab address is the only one a cut must drop.
      await exec(
        ip,
        ['-n', host.ns, '-batch', '-'],
        `link set lo up\naddr add ${host.address}/24 dev eth0\nlink set dev eth0 addrgenmode none up\n`,
      );
      this.#hosts.set(name, host);
      await this.#applyRules();
      return host;
    });
  }

  /**
   * Starts `command` inside the host's namespace (`ip netns exec`, which execs it: the child's pid
   * is the command's). `options` (env, stdio, …) are passed on. `destroy()` kills it.
   */
  spawn(
    host: HostRef,
    command: string,
    args: readonly string[] = [],
    options: SpawnOptions = {},
  ): ChildProcess {
    if (this.#destroyed !== undefined) throw new Error(`lab ${this.name} is destroyed`);
    const { ns } = this.#host(host);
    const child = spawn(this.#tools.ip, ['netns', 'exec', ns, command, ...args], options);
    this.#children.add(child);
    const forget = (): void => {
      this.#children.delete(child);
    };
    child.once('exit', forget);
    child.once('error', forget);
    return child;
  }

  /** Runs a short command inside the host's namespace to its end. */
  async run(
    host: HostRef,
    command: string,
    args: readonly string[] = [],
    env: Record<string, string> = {},
  ): Promise<RunResult> {
    const child = this.spawn(host, command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const { code, stdout, stderr } = await ended(child);
    return { code, stdout, stderr };
  }

  /** Drops every packet between `a` and `b`, both ways, without an answer. Cutting twice is cutting once. */
  cut(a: HostRef, b: HostRef): Promise<void> {
    return this.#serial(() => {
      this.#cuts.add(this.#pair(a, b));
      return this.#applyRules();
    });
  }

  /** Undoes `cut(a, b)`. The pair stays cut while either host is isolated. */
  heal(a: HostRef, b: HostRef): Promise<void> {
    return this.#serial(() => {
      this.#cuts.delete(this.#pair(a, b));
      return this.#applyRules();
    });
  }

  /** Cuts `host` from every other host, those added later included, until `rejoin(host)`. */
  isolate(host: HostRef): Promise<void> {
    return this.#serial(() => {
      this.#isolated.add(this.#host(host).name);
      return this.#applyRules();
    });
  }

  /** Undoes `isolate(host)`; pairs cut with `cut` stay cut. */
  rejoin(host: HostRef): Promise<void> {
    return this.#serial(() => {
      this.#isolated.delete(this.#host(host).name);
      return this.#applyRules();
    });
  }

  /** Undoes every cut and isolation. */
  healAll(): Promise<void> {
    return this.#serial(() => {
      this.#cuts.clear();
      this.#isolated.clear();
      return this.#applyRules();
    });
  }

  /**
   * SIGTERMs the processes the lab started, SIGKILLs whatever is left in its namespaces after a
   * short grace, and deletes the namespaces. Safe to call twice.
   */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#teardown();
    return this.#destroyed;
  }

  async #teardown(): Promise<void> {
    // What was under way finishes first, so no namespace is added behind the teardown's back.
    await this.#queue.catch(() => undefined);
    const running = [...this.#children].filter((c) => c.exitCode === null && c.signalCode === null);
    for (const child of running) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(running.map((c) => new Promise((resolve) => c.once('exit', resolve)))),
      new Promise((resolve) => {
        timer = setTimeout(resolve, KILL_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    this.#teardownNow();
  }

  /** Synchronous, for the process's exit: SIGKILL everything in the lab's namespaces, delete them. */
  #teardownNow(): void {
    process.off('exit', this.#onExit);
    for (const child of this.#children) child.kill('SIGKILL');
    // Hosts first: deleting a host's namespace takes its veth pair, and the switch goes last.
    for (const ns of [...this.#namespaces].reverse()) removeNamespace(this.#tools.ip, ns);
    this.#namespaces.clear();
    labs.live.delete(this.#id);
  }

  #serial<T>(change: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#destroyed !== undefined) throw new Error(`lab ${this.name} is destroyed`);
      return change();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #host(ref: HostRef): LabHost {
    const name = typeof ref === 'string' ? ref : ref.name;
    const host = this.#hosts.get(name);
    if (host === undefined || (typeof ref !== 'string' && ref.ns !== host.ns))
      throw new Error(`no host ${name} in lab ${this.name}`);
    return host;
  }

  #pair(a: HostRef, b: HostRef): string {
    const one = this.#host(a).name;
    const other = this.#host(b).name;
    if (one === other) throw new Error(`cannot cut ${one} from itself`);
    return pairKey(one, other);
  }

  /** Adds the DROP rules of the pairs now cut and removes those of the pairs no longer cut. */
  async #applyRules(): Promise<void> {
    const hosts = [...this.#hosts.keys()];
    const wanted = new Set<string>();
    for (const [i, a] of hosts.entries()) {
      for (const b of hosts.slice(i + 1)) {
        const key = pairKey(a, b);
        if (this.#cuts.has(key) || this.#isolated.has(a) || this.#isolated.has(b)) wanted.add(key);
      }
    }
    for (const key of wanted) {
      if (this.#dropped.has(key)) continue;
      await this.#rules(key, '-A');
      this.#dropped.add(key);
    }
    for (const key of [...this.#dropped]) {
      if (wanted.has(key)) continue;
      await this.#rules(key, '-D');
      this.#dropped.delete(key);
    }
  }

  /** Appends (`-A`) or deletes (`-D`) the four DROP rules of a pair, two in each host's namespace. */
  async #rules(key: string, action: '-A' | '-D'): Promise<void> {
    const [a, b] = key.split(' ').map((name) => this.#host(name));
    if (a === undefined || b === undefined) throw new Error(`no pair ${key}`);
    const { ip, iptables } = this.#tools;
    for (const [self, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      const iptablesIn = (chain: string, match: string): Promise<string> =>
        exec(ip, [
          'netns',
          'exec',
          self.ns,
          iptables,
          '-w',
          action,
          chain,
          match,
          peer.address,
          '-j',
          'DROP',
        ]);
      await iptablesIn('INPUT', '-s');
      await iptablesIn('OUTPUT', '-d');
    }
  }
}

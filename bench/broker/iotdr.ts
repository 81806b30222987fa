/**
 * iotdr's broker in its own process, as a region runs it: `iotdr region --name bench` (the real
 * CLI, from source through tsx) with `broker.tokenAuth` on. While `iotdr region` does not start a
 * broker (its /livez names no `mqtt` URL), `bench/broker/server.ts` runs `createBroker` over the
 * same registry and CA instead, also in a child process.
 *
 * A region may get its Redis (`regions[].redis`) and broker workers (`broker.workers`): with more
 * than one worker, the region's process forks them (node:cluster) and they share its MQTT ports.
 *
 * Either way the connection rate limit per source address is raised out of the way: every bench
 * connection comes from 127.0.0.1, and mosquitto has no such limit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, type IotdrProcess, ROOT, spawnIotdr } from '../../test/harness/process.js';
import type { Cleanup } from '../registry/common.js';

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
/** New connections per second from one address (both ways of running it). */
export const BENCH_CONNECTION_RATE = 1_000_000;

export type IotdrMode = 'region' | 'broker';

export interface IotdrSetup {
  stateDir: string;
  dbPath: string;
  region: string;
  zone: string;
  cleanup: Cleanup;
  /** The region's Redis (`regions[].redis.url`): the broker's messages and sessions go through it. */
  redisUrl?: string;
  /** `broker.workers` (more than 1 needs `redisUrl`). Default 1. */
  workers?: number;
}

export interface RunningIotdr {
  mode: IotdrMode;
  /** How it was started, for the report. */
  command: string;
  pid: number;
  mtlsPort: number;
  tokenPort: number;
  /** The region's HTTP API (`iotdr region` only). */
  apiUrl?: string;
  output(): string;
  /** SIGTERM (SIGKILL after 15 s); resolves with its exit code or signal. */
  stop(): Promise<number | NodeJS.Signals>;
}

function exitOf(child: ChildProcess): Promise<number | NodeJS.Signals> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve(child.exitCode ?? child.signalCode ?? 0);
    else child.once('exit', (code, signal) => resolve(code ?? signal ?? 0));
  });
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Registers the process's stop with `cleanup`; the returned function stops it now. */
function stopper(proc: IotdrProcess, cleanup: Cleanup, what: string): () => Promise<number | NodeJS.Signals> {
  const stop = async () => {
    if (!running(proc.child)) return;
    proc.child.kill('SIGTERM');
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      await proc.exited;
    } finally {
      clearTimeout(timer);
    }
  };
  const registered = cleanup.defer(`stop ${what} (pid ${proc.child.pid})`, stop);
  return async () => {
    await registered();
    return proc.exited;
  };
}

/** What `iotdr region` reports on /livez once it serves, or an error when it exits first. */
async function livez(port: number, proc: IotdrProcess): Promise<Record<string, unknown>> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!running(proc.child)) throw new Error(`iotdr region exited before it served:\n${proc.output()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/livez`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return (await res.json()) as Record<string, unknown>;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`iotdr region did not serve within ${START_TIMEOUT_MS} ms:\n${proc.output()}`);
}

/** The port of an `mqtts://host:port` URL that /livez gave. */
function portOf(url: unknown): number | undefined {
  if (typeof url !== 'string') return undefined;
  const port = Number(new URL(url).port);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/**
 * Starts `iotdr region` on the bench's registry; resolves undefined (with the region stopped again)
 * when that region does not run a broker.
 */
export async function startRegion(setup: IotdrSetup): Promise<RunningIotdr | undefined> {
  const [apiPort, mqttPort, tokenPort] = [await freePort(), await freePort(), await freePort()];
  const config = {
    logging: { level: 'warn' },
    zone: setup.zone,
    regions: [
      {
        name: setup.region,
        priority: 1,
        address: '127.0.0.1',
        api: { port: apiPort },
        cnc: { port: 0 },
        mqtt: { port: mqttPort, tokenPort },
        store: { engine: 'sqlite', path: setup.dbPath },
        ...(setup.redisUrl === undefined ? {} : { redis: { url: setup.redisUrl } }),
      },
    ],
    replication: { enabled: false },
    broker: {
      tokenAuth: true,
      connectionsPerSecondPerAddress: BENCH_CONNECTION_RATE,
      ...(setup.workers === undefined ? {} : { workers: setup.workers }),
    },
  };
  const configFile = join(setup.stateDir, 'iotdr.yaml');
  // JSON is YAML.
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const args = ['region', '--name', setup.region, '--config', configFile];
  const proc = spawnIotdr(args, { IOTDR_HOME: setup.stateDir });
  const stop = stopper(proc, setup.cleanup, `iotdr region ${setup.region}`);
  const live = await livez(apiPort, proc);
  const [mtls, token] = [portOf(live.mqtt), portOf(live.mqttToken)];
  if (mtls === undefined || token === undefined) {
    await stop();
    return undefined;
  }
  return {
    mode: 'region',
    command: `iotdr ${args.join(' ')}`,
    pid: proc.child.pid ?? 0,
    mtlsPort: mtls,
    tokenPort: token,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    output: proc.output,
    stop,
  };
}

/** Starts bench/broker/server.ts: createBroker over the bench's registry, in a child process (no Redis). */
export async function startStandalone(setup: IotdrSetup): Promise<RunningIotdr> {
  if (setup.redisUrl !== undefined || (setup.workers ?? 1) > 1)
    throw new Error('bench/broker/server.ts runs one broker process without Redis: use `iotdr region`');
  const [mqttPort, tokenPort] = [await freePort(), await freePort()];
  const args = [
    '--state-dir',
    setup.stateDir,
    '--db',
    setup.dbPath,
    '--region',
    setup.region,
    '--zone',
    setup.zone,
    '--port',
    String(mqttPort),
    '--token-port',
    String(tokenPort),
    '--connection-rate',
    String(BENCH_CONNECTION_RATE),
  ];
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/broker/server.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let firstLine: ((line: string) => void) | undefined;
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
    const newline = output.indexOf('\n');
    if (newline >= 0) firstLine?.(output.slice(0, newline));
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const proc: IotdrProcess = { child, output: () => output, exited: exitOf(child) };
  const stop = stopper(proc, setup.cleanup, 'bench/broker/server.ts');
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the broker did not listen within ${START_TIMEOUT_MS} ms:\n${output}`)),
      START_TIMEOUT_MS,
    );
    firstLine = (l) => {
      clearTimeout(timer);
      resolve(l);
    };
    void proc.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the broker exited (${code}) before it listened:\n${output}`));
    });
  });
  const addresses = JSON.parse(line) as { tls?: { port?: number }; token?: { port?: number } };
  if (addresses.tls?.port !== mqttPort || addresses.token?.port !== tokenPort) {
    throw new Error(`the broker listens elsewhere than asked: ${line}`);
  }
  return {
    mode: 'broker',
    command: `node --import tsx bench/broker/server.ts ${args.join(' ')}`,
    pid: child.pid ?? 0,
    mtlsPort: mqttPort,
    tokenPort,
    output: () => output,
    stop,
  };
}

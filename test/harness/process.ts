import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitUntil } from '../../src/common/index.js';
import { fetch } from './https.js';

/** The repository root, where src/cli/bin.ts lives. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Where the kernel's ephemeral ports start (outgoing connections take their local ports from
 * there on): ports the tests choose stay below it.
 */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > 12_000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}
const FIRST_PORT = 10_000;
const PAST_LAST_PORT = ephemeralStart();

/** Whether `port` can be bound on `host` now. */
function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * A port free right now on `host`, for a listener the test starts later. It is drawn at random
 * below the ephemeral range: a port the kernel handed out (listen on 0) could be taken, between
 * this answer and the listen, as the local port of any outgoing connection from that address — a
 * region's health probe leaves from the region's own address — and the listen would fail with
 * EADDRINUSE.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = FIRST_PORT + Math.floor(Math.random() * (PAST_LAST_PORT - FIRST_PORT));
    if (await bindable(port, host)) return port;
  }
  throw new Error(`no free port between ${FIRST_PORT} and ${PAST_LAST_PORT - 1} on ${host}`);
}

/** `n` ports free right now on `host`, all different. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort(host));
  return [...ports];
}

export interface IotdrProcess {
  child: ChildProcess;
  /** Everything the process wrote so far, stdout and stderr together. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process ended. */
  exited: Promise<number | NodeJS.Signals>;
}

/**
 * Runs the real `iotdr` CLI from source (through tsx) as a child process. With `group`, it leads a
 * process group of its own, which everything it starts joins: `killGroup` then ends them all.
 */
export function spawnIotdr(
  args: string[],
  env: Record<string, string>,
  cwd = ROOT,
  options: { group?: boolean } = {},
): IotdrProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `${ROOT}src/cli/bin.ts`, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group === true,
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 0));
  });
  return { child, output: () => output, exited };
}

/**
 * SIGKILLs every process left in the group of a process spawned with `group`: the cleanup of a test
 * whose process may have died, or been killed, before stopping what it started.
 */
export function killGroup(proc: IotdrProcess): void {
  const pid = proc.child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // none left
  }
}

/** Polls `url` until it answers 2xx, the process dies, or the time runs out. */
export function waitForHttp(url: string, proc: IotdrProcess, timeoutMs = 30_000): Promise<void> {
  const exited = new Error('process exited');
  return waitUntil(
    async () => {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw exited;
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      return res.ok;
    },
    {
      timeoutMs,
      what: `${url} to answer`,
      fatal: (error) => error === exited,
      timeoutError: (message) => new Error(`${message}:\n${proc.output()}`),
    },
  ).catch((error: unknown) => {
    if (error === exited) throw new Error(`process exited before ${url} answered:\n${proc.output()}`);
    throw error;
  });
}

import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository root, where src/cli/bin.ts lives. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A port free right now on `host` (listen(0), then close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
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
export async function waitForHttp(url: string, proc: IotdrProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`process exited before ${url} answered:\n${proc.output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${proc.output()}`);
}

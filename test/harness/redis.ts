/**
 * Starts a throwaway Redis from Debian's `redis-server`: a temporary directory, a free port on
 * 127.0.0.1, no persistence to disk. Tests that need Redis call `startRedis()` once per file (or
 * once per region: regions never share one) and `stop()` it in afterAll.
 *
 * When the binary is missing the caller skips with the returned reason; with CI=true that is an
 * error instead, so CI never goes green by skipping.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findExecutable } from '../../src/common/index.js';
import { skipReason } from './binaries.js';
import { freePort } from './process.js';

const NOT_FOUND = 'redis-server not found: apt-get install redis-server';

export interface RunningRedis {
  /** redis:// URL of the server's database 0. */
  url: string;
  port: number;
  /** Stops the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export function findRedisServer(): string | undefined {
  return findExecutable('redis-server', ['/usr/bin', '/usr/sbin']);
}

/** Why Redis tests cannot run here (collect time), or undefined. Throws with CI=true. */
export function redisSkipReason(): string | undefined {
  return skipReason(findRedisServer() !== undefined, NOT_FOUND);
}

/** Resolves once the server answers PING with PONG. */
async function answers(port: number, deadline: number, child: ChildProcess): Promise<void> {
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      let data = '';
      socket.setTimeout(500, () => socket.destroy());
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (chunk) => {
        data += chunk.toString();
        if (data.includes('PONG')) {
          socket.end();
          resolve(true);
        }
      });
      socket.on('error', () => resolve(false));
      socket.on('close', () => resolve(data.includes('PONG')));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('redis-server did not answer PING within 10 s');
}

export async function startRedis(): Promise<RunningRedis> {
  const binary = findRedisServer();
  if (binary === undefined) throw new Error(NOT_FOUND);
  const dir = mkdtempSync(join(tmpdir(), 'iotdr-redis-'));
  // A port taken between picking and binding makes redis-server exit: pick again.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      binary,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'yes',
        // Enough for the subscriptions a benchmark holds.
        '--maxclients',
        '10000',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    try {
      await answers(port, Date.now() + 10_000, child);
    } catch (error) {
      child.kill('SIGKILL');
      if (attempt < 3) continue;
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    let stopped: Promise<void> | undefined;
    return {
      url: `redis://127.0.0.1:${port}/0`,
      port,
      stop() {
        stopped ??= new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }).then(() => rmSync(dir, { recursive: true, force: true }));
        return stopped;
      },
    };
  }
}

/** The server's version line, for reports (`redis-server --version`). */
export function redisVersion(): string {
  const binary = findRedisServer();
  if (binary === undefined) return 'not installed';
  return execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
}

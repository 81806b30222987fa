/**
 * Starts a throwaway PostgreSQL cluster from the installed binaries: a temporary directory, a free
 * port on 127.0.0.1, trust authentication, one database. Tests that need PostgreSQL call
 * `startPostgres()` once per file and `stop()` it in afterAll.
 *
 * When the binaries are missing the caller skips its tests with the returned reason; with
 * CI=true that is an error instead, so CI can never go green by skipping.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { executable } from './binaries.js';
import { freePort } from './process.js';

const run = promisify(execFile);

export interface RunningPostgres {
  /** postgres:// URL of a fresh, empty database owned by the superuser `postgres`. */
  url: string;
  /** Stops the server (fast shutdown) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export type StartPostgresResult = RunningPostgres | { skipped: string };

const NOT_FOUND = 'PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql';
const DATABASE = 'iotdr_test';
const SUPERUSER = 'postgres';

function hasTools(dir: string): boolean {
  return executable(join(dir, 'initdb')) && executable(join(dir, 'pg_ctl'));
}

/** Major version from a /usr/lib/postgresql/<major>/bin path, so 16 sorts before 9.6. */
function debianMajor(dir: string): number {
  return Number.parseFloat(dir.split('/').at(-2) ?? '0') || 0;
}

/** `pg_config --bindir`, then Debian's /usr/lib/postgresql/<major>/bin (newest first), then PATH. */
export function findPostgresBinDir(): string | undefined {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dir && hasTools(dir)) return dir;
  } catch {
    // No pg_config on PATH (Debian ships it only with libpq-dev).
  }
  const debianRoot = '/usr/lib/postgresql';
  if (existsSync(debianRoot)) {
    const dirs = readdirSync(debianRoot)
      .map((major) => join(debianRoot, major, 'bin'))
      .filter(hasTools)
      .sort((a, b) => debianMajor(b) - debianMajor(a));
    if (dirs[0]) return dirs[0];
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && hasTools(dir)) return dir;
  }
  return undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** initdb and postgres refuse to run as root: as root, run them as the `postgres` OS user. */
function asServerUser(file: string, args: string[]): [string, string[]] {
  if (!isRoot()) return [file, args];
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find(executable);
  if (runuser) return [runuser, ['-u', SUPERUSER, '--', file, ...args]];
  return ['su', [SUPERUSER, '-s', '/bin/sh', '-c', [file, ...args].map(shellQuote).join(' ')]];
}

async function runAsServerUser(file: string, args: string[]): Promise<void> {
  const [cmd, cmdArgs] = asServerUser(file, args);
  try {
    // LC_ALL=C keeps initdb from failing on a locale the machine does not have.
    await run(cmd, cmdArgs, { env: { ...process.env, LC_ALL: 'C', LANG: 'C' }, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`, {
      cause: error,
    });
  }
}

function chownToServerUser(dir: string): void {
  if (!isRoot()) return;
  const uid = Number(execFileSync('id', ['-u', SUPERUSER], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', SUPERUSER], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no server log)';
  }
}

/**
 * Why PostgreSQL tests cannot run here, or undefined when they can. Synchronous, so a test file
 * can choose `describe.skip` while vitest collects it. Throws instead with CI=true.
 */
export function postgresSkipReason(): string | undefined {
  if (findPostgresBinDir()) return undefined;
  if (process.env.CI === 'true') throw new Error(NOT_FOUND);
  return NOT_FOUND;
}

/**
 * The test database gets a linguistic default collation (ICU en-US, where 'a' < 'B' < 'b'), as
 * production databases usually have, so a query that forgets COLLATE "C" lists in a different
 * order than SQLite and the shared suite catches it. Falls back to the cluster default without ICU.
 */
async function createDatabase(port: number): Promise<void> {
  const admin = new pg.Client({ connectionString: `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres` });
  await admin.connect();
  try {
    try {
      await admin.query(
        `CREATE DATABASE ${DATABASE} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`,
      );
    } catch {
      await admin.query(`CREATE DATABASE ${DATABASE} TEMPLATE template0 ENCODING 'UTF8'`);
    }
  } finally {
    await admin.end();
  }
}

export async function startPostgres(): Promise<StartPostgresResult> {
  const bin = findPostgresBinDir();
  if (!bin) {
    if (process.env.CI === 'true') throw new Error(NOT_FOUND);
    return { skipped: NOT_FOUND };
  }
  const initdb = join(bin, 'initdb');
  const pgCtl = join(bin, 'pg_ctl');
  const dir = mkdtempSync(join(tmpdir(), 'iotdr-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  chownToServerUser(dir);

  let started = false;
  const stopSync = (): void => {
    // Last resort when the test process exits without calling stop(): no orphaned servers.
    if (!started) return;
    try {
      const [cmd, args] = asServerUser(pgCtl, ['-D', data, 'stop', '-m', 'immediate', '-w']);
      execFileSync(cmd, args, { stdio: 'ignore' });
    } catch {
      // Already stopped.
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await runAsServerUser(initdb, [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      SUPERUSER,
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    let port = 0;
    let lastError: unknown;
    // Another process may take the port between picking and binding it: try a few.
    for (let attempt = 0; attempt < 3 && !started; attempt++) {
      port = await freePort();
      try {
        await runAsServerUser(pgCtl, [
          '-D',
          data,
          '-l',
          log,
          '-w',
          '-t',
          '60',
          '-o',
          `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on`,
          'start',
        ]);
        started = true;
      } catch (error) {
        lastError = error;
      }
    }
    if (!started) {
      throw new Error(`PostgreSQL did not start: ${readLog(log)}`, { cause: lastError });
    }
    process.once('exit', stopSync);

    await createDatabase(port);

    let stopped = false;
    return {
      url: `postgres://${SUPERUSER}@127.0.0.1:${port}/${DATABASE}`,
      async stop() {
        if (stopped) return;
        stopped = true;
        process.removeListener('exit', stopSync);
        try {
          await runAsServerUser(pgCtl, ['-D', data, 'stop', '-m', 'fast', '-w']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    stopSync();
    process.removeListener('exit', stopSync);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

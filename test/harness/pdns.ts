/**
 * Starts a throwaway PowerDNS Authoritative server from Debian's binaries: a temporary directory,
 * the gsqlite3 backend with a fresh schema, the HTTP API on a free port and DNS on another, both on
 * 127.0.0.1. Tests call `startPowerDns()` once per file and `stop()` it in afterAll.
 *
 * When the binaries are missing the caller skips with the returned reason; with CI=true that is an
 * error instead, so CI can never go green by skipping (like postgres.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { waitUntil } from '../../src/common/index.js';
import { executable, skipReason } from './binaries.js';
import { fetch } from './https.js';
import { freePort } from './process.js';

const PDNS_SERVER = '/usr/sbin/pdns_server';
const SCHEMAS = [
  '/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql',
  '/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql',
];
const NOT_FOUND = 'PowerDNS not found: apt-get install pdns-server pdns-backend-sqlite3';

export interface RunningPowerDns {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:PORT. */
  url: string;
  apiKey: string;
  /** UDP and TCP port of the DNS service on 127.0.0.1. */
  dnsPort: number;
  /** Process id of pdns_server (the bench reads its CPU time). */
  pid: number;
  /** Stops the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

function schemaPath(): string | undefined {
  return SCHEMAS.find((p) => existsSync(p));
}

/** Why PowerDNS tests cannot run here, or undefined when they can; throws instead with CI=true. */
export function powerDnsSkipReason(): string | undefined {
  return skipReason(executable(PDNS_SERVER) && schemaPath() !== undefined, NOT_FOUND);
}

function waitForApi(url: string, apiKey: string, child: ChildProcess, log: () => string): Promise<void> {
  const exited = new Error('pdns_server exited');
  return waitUntil(
    async () => {
      if (child.exitCode !== null) throw exited;
      const response = await fetch(`${url}/api/v1/servers/localhost`, { headers: { 'X-API-Key': apiKey } });
      await response.body?.cancel();
      return response.ok;
    },
    {
      timeoutMs: 15_000,
      what: `pdns_server's API on ${url}`,
      fatal: (error) => error === exited,
      timeoutError: (message) => new Error(`${message}: ${log()}`),
    },
  ).catch((error: unknown) => {
    if (error === exited) throw new Error(`pdns_server exited with ${child.exitCode}: ${log()}`);
    throw error;
  });
}

export async function startPowerDns(): Promise<RunningPowerDns | { skipped: string }> {
  const skipped = powerDnsSkipReason();
  const schema = schemaPath();
  if (skipped || !schema) return { skipped: skipped ?? NOT_FOUND };
  const dir = mkdtempSync(join(tmpdir(), 'iotdr-pdns-'));
  const database = join(dir, 'pdns.sqlite3');
  const db = new Database(database);
  db.exec(readFileSync(schema, 'utf8'));
  db.close();
  const apiKey = randomBytes(16).toString('hex');

  let lastError: unknown;
  // Another process may take a port between picking and binding it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const webPort = await freePort();
    const dnsPort = await freePort();
    writeFileSync(
      join(dir, 'pdns.conf'),
      [
        'launch=gsqlite3',
        `gsqlite3-database=${database}`,
        'api=yes',
        `api-key=${apiKey}`,
        'webserver=yes',
        'webserver-address=127.0.0.1',
        `webserver-port=${webPort}`,
        'webserver-allow-from=127.0.0.0/8',
        'local-address=127.0.0.1',
        `local-port=${dnsPort}`,
        `socket-dir=${dir}`,
        'guardian=no',
        'daemon=no',
        'disable-syslog=yes',
        'write-pid=no',
        'security-poll-suffix=',
        'loglevel=4',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    let output = '';
    const child = spawn(PDNS_SERVER, [`--config-dir=${dir}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const kill = (): void => {
      if (child.exitCode === null) child.kill('SIGKILL');
    };
    process.once('exit', kill);
    const url = `http://127.0.0.1:${webPort}`;
    try {
      await waitForApi(url, apiKey, child, () => output.split('\n').slice(-20).join('\n'));
    } catch (error) {
      lastError = error;
      process.removeListener('exit', kill);
      kill();
      continue;
    }
    let stopped = false;
    return {
      url,
      apiKey,
      dnsPort,
      pid: child.pid ?? 0,
      async stop() {
        if (stopped) return;
        stopped = true;
        process.removeListener('exit', kill);
        if (child.exitCode === null) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error('PowerDNS did not start', { cause: lastError });
}

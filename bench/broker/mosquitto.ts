/**
 * Debian's mosquitto as the reference broker: started from its binary with a configuration written
 * to a temporary directory, on free ports of 127.0.0.1, with the same CA, the same device
 * certificates and the same usernames and passwords as the iotdr broker.
 *
 * Two TLS listeners, as iotdr has: one requires a client certificate signed by the embedded CA and
 * takes its CN (the thing name) as the username; the other takes username and password from a
 * mosquitto_passwd file. Both apply an ACL shaped like the bench's iotdr policy, so each broker
 * authorizes every PUBLISH, SUBSCRIBE and delivery.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { access, constants, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../test/harness/process.js';
import type { Cleanup } from '../registry/common.js';

const run = promisify(execFile);

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

export interface MosquittoFiles {
  /** The embedded CA (PEM). */
  caPem: string;
  /** Server certificate and key from the embedded CA, for `mqtt.<zone>` and 127.0.0.1. */
  certPem: string;
  keyPem: string;
  /** username → password for the password listener (thing name → device token). */
  passwords: ReadonlyMap<string, string>;
}

export interface RunningMosquitto {
  version: string;
  pid: number;
  mtlsPort: number;
  passwordPort: number;
  /** Everything it printed. */
  output(): string;
  stop(): Promise<void>;
}

/** The first executable `name` on PATH, or in /usr/sbin and /usr/local/sbin (where Debian puts mosquitto). */
async function which(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const path = join(dir, name);
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The binaries, or a message that says what is missing and how to get it. */
export async function findMosquitto(): Promise<{ mosquitto: string; passwd: string } | { missing: string }> {
  const mosquitto = await which('mosquitto');
  const passwd = await which('mosquitto_passwd');
  if (mosquitto && passwd) return { mosquitto, passwd };
  const absent = [mosquitto ? undefined : 'mosquitto', passwd ? undefined : 'mosquitto_passwd'].filter(
    Boolean,
  );
  return {
    missing: `${absent.join(' and ')} not found on PATH or in /usr/sbin (Debian/Ubuntu: apt-get install mosquitto)`,
  };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Writes the configuration, password file and ACL into `dir` and starts mosquitto; resolves once
 * both listeners accept connections. Stopped by `cleanup` (also on Ctrl-C) unless stopped before.
 */
export async function startMosquitto(
  bin: { mosquitto: string; passwd: string },
  dir: string,
  files: MosquittoFiles,
  cleanup: Cleanup,
  /** `set_tcp_nodelay true`: no Nagle delay on its sockets (mosquitto's default is false). */
  noDelay = false,
): Promise<RunningMosquitto> {
  const path = (name: string) => join(dir, name);
  await writeFile(path('ca.pem'), files.caPem);
  await writeFile(path('server.pem'), files.certPem);
  await writeFile(path('server.key'), files.keyPem, { mode: 0o600 });
  // Plain `user:password` lines, hashed in place by `mosquitto_passwd -U` (one run for all).
  await writeFile(path('passwd'), [...files.passwords].map(([u, p]) => `${u}:${p}\n`).join(''), {
    mode: 0o600,
  });
  await run(bin.passwd, ['-U', path('passwd')]);
  // The iotdr bench policy: publish only under bench/<own thing name>/m, read all of bench/.
  await writeFile(path('acl'), 'pattern write bench/%u/m\npattern read bench/#\n');
  const [mtlsPort, passwordPort] = [await freePort(), await freePort()];
  const tls = [`certfile ${path('server.pem')}`, `keyfile ${path('server.key')}`, `acl_file ${path('acl')}`];
  const conf = [
    // Run as root, mosquitto would switch to the user `mosquitto`, who cannot read the temporary directory.
    `user ${userInfo().username}`,
    'per_listener_settings true',
    'persistence false',
    // Its default (1000 per client) drops QoS1 messages beyond it when a subscriber falls behind;
    // the bench requires every message to arrive, as iotdr's broker (no such limit) delivers them.
    'max_queued_messages 0',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'connection_messages false',
    `set_tcp_nodelay ${noDelay}`,
    `listener ${mtlsPort} 127.0.0.1`,
    ...tls,
    `cafile ${path('ca.pem')}`,
    'require_certificate true',
    'use_identity_as_username true',
    `listener ${passwordPort} 127.0.0.1`,
    ...tls,
    `password_file ${path('passwd')}`,
    'allow_anonymous false',
    '',
  ].join('\n');
  await writeFile(path('mosquitto.conf'), conf);

  const { stdout } = await run(bin.mosquitto, ['-h']).catch((error: { stdout?: string }) => ({
    stdout: error.stdout ?? '',
  }));
  const version = /mosquitto version (\S+)/.exec(stdout)?.[1] ?? 'unknown';

  const child = spawn(bin.mosquitto, ['-c', path('mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  await spawned;
  const stop = cleanup.defer(`stop mosquitto (pid ${child.pid})`, () => stopChild(child, exited));

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`mosquitto exited (${child.exitCode ?? child.signalCode}) at start:\n${output}`);
    }
    if ((await accepts(mtlsPort)) && (await accepts(passwordPort))) break;
    if (Date.now() > deadline)
      throw new Error(`mosquitto did not listen within ${START_TIMEOUT_MS} ms:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { version, pid: child.pid ?? 0, mtlsPort, passwordPort, output: () => output, stop };
}

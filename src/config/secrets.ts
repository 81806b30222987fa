/**
 * Secrets live in files of their own (mode 0600, in directories of mode 0700), never in the
 * configuration file and never in logs (docs/architecture.md §2, §8).
 */
import { chmod, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, ensurePrivateDir, writeFileAtomic } from '../common/index.js';

/** Mode of the state directory and of every directory that holds secrets. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of a secret file. */
export const SECRET_FILE_MODE = 0o600;
/** Subdirectory of the state directory for secrets (tokens, keys, passwords). */
export const SECRETS_DIR = 'secrets';

/** Group and other permission bits: a secret file with any of them set is refused. */
const SHARED_BITS = 0o077;
/** POSIX modes mean nothing on Windows, where access is governed by ACLs. */
const HAS_POSIX_MODES = process.platform !== 'win32';

/** `<stateDir>/secrets`. */
export function secretsDir(stateDir: string): string {
  return join(stateDir, SECRETS_DIR);
}

/**
 * The secret the routes of a region's NATS cluster authenticate with: `<state>/secrets/nats-<region>.route`,
 * made by the first server of the region started on a state directory; a host without the CA's key
 * is given a copy, as it is given its site certificate.
 */
export function natsRouteSecretPath(stateDir: string, region: string): string {
  return join(secretsDir(stateDir), `nats-${region}.route`);
}

/**
 * Creates the state directory (mode 0700 if it did not exist) and its `secrets/` subdirectory, whose
 * mode is set to 0700 even if it existed.
 */
export async function ensureStateDir(stateDir: string): Promise<void> {
  await ensurePrivateDir(stateDir);
  const secrets = secretsDir(stateDir);
  await mkdir(secrets, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (HAS_POSIX_MODES) await chmod(secrets, PRIVATE_DIR_MODE);
}

/**
 * Writes a secret atomically: a temporary file of mode 0600 in the same directory, flushed, then
 * renamed over `path`, so a reader sees the old secret or the new one, never a part, and the secret
 * is never readable by others even for a moment. Missing directories are created with mode 0700.
 */
export async function writeSecretFile(path: string, contents: string): Promise<void> {
  await writeFileAtomic(path, contents, { mode: SECRET_FILE_MODE });
}

/**
 * Reads a secret, trimmed of surrounding whitespace (an editor's final newline is not part of a password).
 * @throws ConfigError if the file is missing, empty, or readable or writable by group or others; the
 *   message gives the `chmod` that fixes it.
 */
export async function readSecretFile(path: string): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = code === 'ENOENT' ? 'no such file' : `cannot be read: ${(error as Error).message}`;
    throw new ConfigError(`cannot read secret file ${path}`, [{ path, message }]);
  }
  try {
    // fstat on the open handle: the file checked is the file read.
    const stats = await handle.stat();
    if (!stats.isFile()) {
      throw new ConfigError(`secret file ${path} is not a regular file`, [
        { path, message: 'not a regular file' },
      ]);
    }
    if (HAS_POSIX_MODES && (stats.mode & SHARED_BITS) !== 0) {
      const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
      const message = `mode ${mode} lets group or others access it; run: chmod 600 ${path}`;
      throw new ConfigError(`refusing secret file ${path}: ${message}`, [{ path, message }]);
    }
    const secret = (await handle.readFile('utf8')).trim();
    if (secret === '') {
      throw new ConfigError(`secret file ${path} is empty`, [{ path, message: 'empty file' }]);
    }
    return secret;
  } finally {
    await handle.close();
  }
}

/**
 * Reads a secret file, or makes it on first start with `make()`. It is published exclusively and
 * whole (writeFileAtomic), so processes starting together from one state directory agree on one
 * secret: the loser of the race reads the winner's.
 */
export async function loadOrCreateSecretFile(path: string, make: () => string): Promise<string> {
  const made = make();
  if (await writeFileAtomic(path, `${made}\n`, { mode: SECRET_FILE_MODE, exclusive: true })) return made;
  return readSecretFile(path);
}

import { chmod, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir, exists, readIfExists, writeFileAtomic } from '../common/index.js';

const POSIX = process.platform !== 'win32';
/** A temp file older than this belongs to a process that died mid-write; newer ones may be in use. */
const STALE_TEMP_MS = 60_000;
const TEMP_FILE = /^\.ca\.(key|pem)\.[0-9]+\.[0-9a-f]+\.tmp$/;

function errnoCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error ? String(error.code) : undefined;
}

export { ensurePrivateDir, exists, readIfExists };

/**
 * Writes `content` to `dir/name` only if that name does not exist yet, atomically (see
 * writeFileAtomic): two processes racing cannot make two CAs, and a crash at any point leaves either
 * no file or the whole file. Returns false when another writer won.
 */
export function publishExclusive(dir: string, name: string, content: string, mode: number): Promise<boolean> {
  return writeFileAtomic(join(dir, name), content, { mode, exclusive: true });
}

/** Brings a private key file down to 0600 if group or others can access it. */
export async function tightenKeyMode(path: string): Promise<void> {
  if (!POSIX) return;
  const { mode } = await stat(path);
  if ((mode & 0o077) !== 0) await chmod(path, 0o600);
}

/** Removes temp files left by a process that crashed between writing and publishing. */
export async function removeStaleTemps(dir: string): Promise<void> {
  const now = Date.now();
  for (const entry of await readdir(dir)) {
    if (!TEMP_FILE.test(entry)) continue;
    const path = join(dir, entry);
    try {
      if (now - (await stat(path)).mtimeMs > STALE_TEMP_MS) await rm(path, { force: true });
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
    }
  }
}

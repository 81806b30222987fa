import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, delimiter, dirname, join } from 'node:path';

/** POSIX modes mean nothing on Windows, where access is governed by ACLs. */
const POSIX = process.platform !== 'win32';

/** Creates `dir` and missing parents with mode 0700; an existing directory keeps its mode. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask; set it outright on what we made.
  if (created !== undefined && POSIX) await chmod(dir, 0o700);
}

async function syncDir(dir: string): Promise<void> {
  if (!POSIX) return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes a file so that a reader, or a process that crashes half-way, sees either nothing (or the
 * old content) or the whole new content: a temporary file in the same directory with its mode set
 * exactly, fsynced, then given its name. With `exclusive`, the name is taken by link(2), which
 * fails rather than replace an existing file: two processes racing to create the same file agree
 * on one, and the loser gets `false`. Otherwise rename(2) replaces the file. Missing directories are
 * created with mode 0700.
 */
export async function writeFileAtomic(
  path: string,
  contents: string,
  options: { mode: number; exclusive?: boolean },
): Promise<boolean> {
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', options.mode);
    try {
      if (POSIX) await handle.chmod(options.mode);
      await handle.writeFile(contents, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.exclusive) {
      try {
        await link(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      }
    } else {
      await rename(temp, path);
    }
    await syncDir(dir);
    return true;
  } finally {
    await rm(temp, { force: true });
  }
}

/** A text file's contents, or undefined when there is no such file (any other error is thrown). */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Whether a file exists (an error other than "no such file" is thrown). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** Whether this process may execute `path`. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The executable `name` in a directory of PATH, else of `fallbackDirs` (in order: where Debian
 * installs it, for a PATH without them); undefined when none has it.
 */
export function findExecutable(name: string, fallbackDirs: readonly string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...fallbackDirs]) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

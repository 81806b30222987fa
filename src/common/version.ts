import { readFile } from 'node:fs/promises';

let cachedVersion: string | undefined;

/** The package's version (its package.json), for banners and /livez; `0.0.0` when unreadable. */
export async function packageVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion;
  try {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    cachedVersion = pkg.version ?? '0.0.0';
  } catch {
    cachedVersion = '0.0.0';
  }
  return cachedVersion;
}

/**
 * Where a module the platform starts in another process or thread lives: the compiled file next to
 * the caller when the package was built, otherwise the TypeScript source under tsx. tsx is named by
 * its absolute path, so the child finds it whatever its working directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

export interface ModuleEntry {
  url: URL;
  /** Node options a child process needs to run it (`--import <tsx>` for the source). */
  execArgv: string[];
  /** tsx's ESM API, for the source: a worker thread does not take `--import` from execArgv. */
  tsxApi?: string;
}

/** `base` is the caller's `import.meta.url`; `name` the module's path without its extension. */
export function moduleEntry(base: string, name: string): ModuleEntry {
  const compiled = new URL(`${name}.js`, base);
  if (existsSync(fileURLToPath(compiled))) return { url: compiled, execArgv: [] };
  const require = createRequire(base);
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  // The ESM build of `tsx/esm/api`, as tsx's own exports map names it.
  const manifest = pathToFileURL(require.resolve('tsx/package.json'));
  const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  const tsxApi = new URL(pkg.exports['./esm/api']?.import.default ?? '', manifest).href;
  return { url: new URL(`${name}.ts`, base), execArgv: ['--import', tsx], tsxApi };
}

/** A worker thread running the module: compiled, or the source with tsx registered in the thread first. */
export function startWorker(base: string, name: string, options: WorkerOptions): Worker {
  const entry = moduleEntry(base, name);
  if (!entry.tsxApi) return new Worker(entry.url, options);
  const code = `import(${JSON.stringify(entry.tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.url.href)}); });`;
  return new Worker(code, { ...options, eval: true });
}

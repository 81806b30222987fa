/**
 * What the registry benchmarks share: a bounded closed-loop load driver with latency recording,
 * a cleanup stack that also runs on error and on Ctrl-C, and the table they print.
 */
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';

/** One measured figure, as a row of the table. */
export interface Figure {
  /** What is measured, e.g. "service upserts". */
  figure: string;
  /** Where: store engine and settings. */
  setting: string;
  /** Operations in flight at once. */
  concurrency: number;
  /** Operations completed in the timed part (warm-up excluded). */
  ops: number;
  seconds: number;
  perSecond: number;
  p50Ms?: number;
  p99Ms?: number;
  /** The goal, per second; undefined when the figure is informational. */
  target?: number;
  /** Free text shown under the table, e.g. connections opened. */
  note?: string;
}

export interface DriveResult {
  ops: number;
  seconds: number;
  /** Per-operation latency in ms, one entry per completed operation, sorted ascending. */
  latenciesMs: Float64Array;
}

/**
 * Runs `op(i)` for i = 0, 1, 2, … with `concurrency` calls in flight, until `durationMs` passed or
 * `maxOps` were started, whichever comes first. The first failure stops every worker and is
 * rethrown once all in-flight calls settled, so a broken run can never report a rate.
 */
export async function drive(
  concurrency: number,
  durationMs: number,
  maxOps: number,
  op: (i: number) => Promise<void>,
): Promise<DriveResult> {
  const latencies = new Float64Array(maxOps);
  let next = 0;
  let done = 0;
  let failure: { error: unknown } | undefined;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(durationMs * 1e6));
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < maxOps && process.hrtime.bigint() < deadline) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      try {
        await op(i);
      } catch (error) {
        failure ??= { error };
        return;
      }
      latencies[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (failure !== undefined) throw failure.error;
  if (done !== next) throw new Error(`drive: ${next} operations started but ${done} completed`);
  return { ops: done, seconds, latenciesMs: latencies.slice(0, done).sort() };
}

/** Nearest-rank percentile of an ascending array; `p` in (0, 1]. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

/** Throws with a message that says what a run got wrong; benchmarks never report unchecked work. */
export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`benchmark check failed: ${message}`);
}

/**
 * Cleanups run last-in first-out, each once, whatever happened; a failing cleanup is reported and
 * the rest still run.
 */
export class Cleanup {
  #stack: Array<{ name: string; fn: () => Promise<void> | void }> = [];
  #running: Promise<void> | undefined;

  /** Registers `fn`; the returned function runs it now (and removes it from the stack). */
  defer(name: string, fn: () => Promise<void> | void): () => Promise<void> {
    const entry = { name, fn };
    this.#stack.push(entry);
    return async () => {
      const at = this.#stack.indexOf(entry);
      if (at < 0) return;
      this.#stack.splice(at, 1);
      await entry.fn();
    };
  }

  /** Runs every registered cleanup; a second call while one is running joins it. */
  runAll(): Promise<void> {
    this.#running ??= this.#runAll().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #runAll(): Promise<void> {
    while (this.#stack.length > 0) {
      const entry = this.#stack.pop();
      if (!entry) break;
      try {
        await entry.fn();
      } catch (error) {
        console.error(`cleanup "${entry.name}" failed:`, error);
      }
    }
  }
}

export function machine(): string[] {
  const all = cpus();
  const model = all[0]?.model.trim() ?? 'unknown CPU';
  return [
    `cpu:     ${model}, ${all.length} logical cores`,
    `memory:  ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `os:      ${process.platform} ${release()} ${process.arch}`,
    `node:    ${process.version}`,
  ];
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '' : n.toFixed(2));

/** The figures as an aligned Markdown table, ready to paste into docs/benchmarks.md. */
export function table(figures: Figure[]): string {
  const head = ['figure', 'store / setting', 'in flight', 'ops', 's', 'per second', 'p50 ms', 'p99 ms'];
  const rows = figures.map((f) => [
    f.figure,
    f.setting,
    String(f.concurrency),
    int(f.ops),
    f.seconds.toFixed(2),
    int(f.perSecond),
    ms(f.p50Ms),
    ms(f.p99Ms),
    f.target === undefined ? '—' : `≥ ${int(f.target)}`,
    f.target === undefined ? '—' : f.perSecond >= f.target ? 'yes' : '**NO**',
  ]);
  head.push('target /s', 'met');
  const right = new Set([2, 3, 4, 5, 6, 7, 8]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((cell, c) => (right.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (right.has(c) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

/** The SQLite library's version, from a scratch database in `dir`. */
export function sqliteVersion(dir: string): string {
  const db = new Database(join(dir, 'version.db'));
  try {
    return (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  } finally {
    db.close();
  }
}

/** The server version of the PostgreSQL at `url`. */
export async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version ?? 'unknown';
  } finally {
    await client.end();
  }
}

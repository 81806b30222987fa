/**
 * The registry benchmarks in one run (`npm run bench:registry`): service upserts on SQLite and
 * PostgreSQL, HTTP writes against a real region process, policy evaluations. Prints the machine,
 * a table of figures against their targets, and the total time; recorded in docs/benchmarks.md.
 *
 * Options: `--seconds N` timed part of each store/HTTP measurement (default 5; warm-ups are a
 * fifth of it, at least 1 s).
 *
 * Every measurement checks that its work is real (things counted in the store, change log seqs,
 * no non-2xx answers) and the run fails, exit status 1, if one does not. A missed target is
 * reported in the table, not as a failure: speed is measured here, never asserted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PostgresStore, type RegistryStore, SqliteStore } from '../../src/registry/index.js';
import { type RunningPostgres, startPostgres } from '../../test/harness/postgres.js';
import { Cleanup, type Figure, machine, postgresVersion, sqliteVersion, table } from './common.js';
import { benchHttpWrites } from './http.js';
import { benchPolicy } from './policy.js';
import { benchServiceUpserts } from './service.js';

/** Targets, per second. */
const SERVICE_UPSERTS_TARGET = 20_000;
const HTTP_WRITES_TARGET = 2_000;
const POLICY_EVALUATIONS_TARGET = 200_000;

const SERVICE_CONCURRENCY = 64;
const HTTP_CONCURRENCY = 32;
/** Bounds every loop whatever the machine: far above what one second of any figure reaches. */
const MAX_OPS_PER_SECOND = 200_000;
/** Timed part of the policy benchmark for each of its five mixes (plus a fifth of it to warm up). */
const POLICY_MS_PER_MIX = 1_000;

async function withStore(store: RegistryStore, fn: (store: RegistryStore) => Promise<Figure>) {
  await store.init();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 60) {
    console.error(`--seconds must be a number in (0, 60], got ${values.seconds}`);
    return 2;
  }
  const durationMs = seconds * 1000;
  const warmupMs = Math.max(1000, durationMs / 5);
  const maxOps = Math.ceil(MAX_OPS_PER_SECOND * Math.max(seconds, warmupMs / 1000));
  const started = process.hrtime.bigint();
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    console.error(`\n${signal}: cleaning up`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const figures: Figure[] = [];
  const notes: string[] = [];
  const log = (line: string) => console.error(`… ${line}`);
  try {
    const dir = await mkdtemp(join(tmpdir(), 'iotdr-bench-'));
    cleanup.defer(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
    console.log(machine().join('\n'));
    console.log(`temp:    ${dir} (SQLite files)`);
    console.log(`sqlite:  ${sqliteVersion(dir)} (better-sqlite3), WAL`);

    for (const synchronous of ['full', 'normal'] as const) {
      log(`service upserts, SQLite synchronous=${synchronous}`);
      const path = join(dir, `service-${synchronous}.db`);
      figures.push(
        await withStore(new SqliteStore({ path, synchronous }), (store) =>
          benchServiceUpserts({
            store,
            setting: `sqlite synchronous=${synchronous}`,
            concurrency: SERVICE_CONCURRENCY,
            durationMs,
            warmupMs,
            maxOps,
            target: SERVICE_UPSERTS_TARGET,
          }),
        ),
      );
    }

    log('starting a throwaway PostgreSQL cluster');
    const pgResult = await startPostgres();
    let postgres: RunningPostgres | undefined;
    if ('skipped' in pgResult) {
      notes.push(`PostgreSQL figures skipped: ${pgResult.skipped}`);
    } else {
      postgres = pgResult;
      cleanup.defer('stop PostgreSQL', () => pgResult.stop());
      console.log(`postgres: ${await postgresVersion(pgResult.url)} (throwaway cluster, fsync=on)`);
      log('service upserts, PostgreSQL');
      figures.push(
        await withStore(
          new PostgresStore({ connectionString: pgResult.url, schema: 'bench_service' }),
          (store) =>
            benchServiceUpserts({
              store,
              setting: 'postgres',
              concurrency: SERVICE_CONCURRENCY,
              durationMs,
              warmupMs,
              maxOps,
            }),
        ),
      );
    }

    // Each store over HTTPS (mutual TLS, the default) and over plain loopback HTTP, one after the
    // other: the difference is what TLS costs.
    const httpRuns = (['mutual-tls', 'plain-loopback'] as const).flatMap((links) => {
      const over = links === 'mutual-tls' ? 'https' : 'plain http';
      return [
        { store: { engine: 'sqlite' as const }, setting: `region, sqlite synchronous=full, ${over}`, links },
        ...(postgres
          ? [
              {
                store: {
                  engine: 'postgres' as const,
                  url: postgres.url,
                  schema: `bench_http_${links.split('-')[0]}`,
                },
                setting: `region, postgres, ${over}`,
                links,
              },
            ]
          : []),
      ];
    });
    for (const run of httpRuns) {
      log(`HTTP writes, ${run.setting}`);
      const figure = await benchHttpWrites({
        ...run,
        concurrency: HTTP_CONCURRENCY,
        durationMs,
        warmupMs,
        maxOps,
        target: HTTP_WRITES_TARGET,
        cleanup,
      });
      figures.push(figure);
      if (figure.note) notes.push(`${figure.figure}, ${figure.setting}: ${figure.note}`);
    }
    // Nothing else running while the CPU-bound figure is taken.
    await cleanup.runAll();

    log('policy evaluations');
    for (const r of await benchPolicy(POLICY_MS_PER_MIX)) {
      figures.push({
        figure: r.name,
        setting: '3 policies, 10 statements',
        concurrency: 1,
        ops: Math.round((r.opsPerSec * POLICY_MS_PER_MIX) / 1000),
        seconds: POLICY_MS_PER_MIX / 1000,
        perSecond: r.opsPerSec,
        target: POLICY_EVALUATIONS_TARGET,
      });
    }

    console.log('');
    console.log(table(figures));
    for (const note of notes) console.log(`\n${note}`);
    const missed = figures.filter((f) => f.target !== undefined && f.perSecond < f.target);
    console.log(
      `\n${missed.length === 0 ? 'every target met' : `${missed.length} target(s) missed`}; total run time ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`,
    );
    return 0;
  } catch (error) {
    // After Ctrl-C the load fails as the region stops: that is not a finding.
    if (!interrupted) console.error('\nbenchmark failed:', error);
    return 1;
  } finally {
    await cleanup.runAll();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

process.exitCode = await main();

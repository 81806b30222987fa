/**
 * The replication benchmarks in one run (`npm run bench:replication`), on real region processes
 * (`iotdr region`, us-east and us-west, on 127.0.0.1):
 *
 * (a) sustained apply rate: us-east gets a backlog of new things while us-west is stopped; us-west
 *     then tails it from us-east's change log. On SQLite, and into PostgreSQL.
 * (b) replication lag at a steady 1,000 writes/s into us-east, in us-west's lag histogram and from
 *     the client (PUT answered in us-east → GET 200 in us-west).
 * (c) initial sync: an empty us-west copies 100,000 devices (thing, certificate, certificate
 *     attached to the thing, policy attached to the certificate) from us-east's snapshot.
 *
 * Options: `--changes N` backlog of (a) (default 50000), `--devices N` for (c) (default 100000),
 * `--lag-seconds S` and `--rate R` for (b) (default 20 s at 1000/s), `--skip-postgres`, `--links
 * mutual-tls|plain-loopback` (default mutual-tls: run both to see what TLS costs).
 *
 * Every figure is checked before it is reported: after each part both regions are stopped and
 * their stores compared entity by entity (counts and a digest), the links must have dead-lettered
 * nothing, and every write must have been acknowledged; a failed check ends the run with exit
 * status 1. A missed target shows as **NO** in the table; speed is measured here, never asserted.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KIND } from '../../src/registry/index.js';
import { type RunningPostgres, startPostgres } from '../../test/harness/postgres.js';
import { Cleanup, check, machine, postgresVersion, sqliteVersion } from '../registry/common.js';
import { type CatchUp, startWestAlone, timeCatchUp } from './catchup.js';
import { measureLag } from './lag.js';
import { loadDevices, loadThings, thingName } from './load.js';
import { EAST, RegionPair, type StoreSpec, WEST } from './regions.js';
import { int, ms, type Row, table } from './report.js';
import { checkSame } from './verify.js';

/** Targets (docs/architecture.md §10; figures in docs/benchmarks.md). */
const APPLY_TARGET_PER_S = 10_000;
const LAG_P99_TARGET_MS = 100;
const SYNC_TARGET_S = 60;
/** The AWS reference design's initial sync, for comparison: 2,400 devices in about 10 minutes. */
const REFERENCE_DEVICES = 2400;
const REFERENCE_SECONDS = 600;

/**
 * Only the retry delays differ from the defaults: the link retries at most 50 ms apart while
 * us-east is down, so the clock of (a) and (c) can start when us-east serves.
 */
const BENCH_REPLICATION = { retryBaseMs: 10, retryMaxMs: 50 };
const DEVICE_KINDS = [KIND.thing, KIND.certificate, KIND.thingPrincipal, KIND.policyPrincipal, KIND.policy];
const CATCH_UP_TIMEOUT_MS = 300_000;

function states(c: CatchUp): string {
  return c.states.join(' → ');
}

/**
 * (a): both regions start once so us-west's link copies the (empty) us-east and then tails its
 * log; both stop; `n` things are written into us-east's store; us-west starts alone, then us-east.
 */
async function backlog(pair: RegionPair, east: StoreSpec, n: number): Promise<CatchUp> {
  check(east.engine === 'sqlite', 'the backlog is loaded into a SQLite us-east');
  await Promise.all([pair.start(EAST), pair.start(WEST)]);
  for (const region of [EAST, WEST] as const) {
    // Tailing comes only after a completed copy (with both regions up, it cannot be a retry).
    await pair.waitForLink(region, (l) => l.state.type === 'tailing', 'the first copy', 60_000);
  }
  await pair.stop(WEST);
  await pair.stop(EAST);
  await loadThings(east.path, 'backlog', n);
  await startWestAlone(pair);
  const result = await timeCatchUp(pair, n, CATCH_UP_TIMEOUT_MS);
  check(
    !result.states.includes('bootstrapping'),
    `us-west copied a snapshot instead of tailing the log (${states(result)})`,
  );
  return result;
}

function applyRow(setting: string, c: CatchUp, target: boolean): Row {
  const rate = c.processed / c.seconds;
  return {
    figure: 'sustained apply rate (change log)',
    setting,
    work: `${int(c.processed)} changes`,
    seconds: c.seconds,
    result: `${int(rate)} changes/s`,
    target: target ? `≥ ${int(APPLY_TARGET_PER_S)} changes/s` : '— (the target is for SQLite)',
    met: target ? rate >= APPLY_TARGET_PER_S : undefined,
  };
}

const LEVELS: Record<number, string> = { 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/**
 * What a region printed, one line per distinct message with how often, besides the expected
 * warning of a link retrying against a stopped peer. The regions log pino JSON at level warn.
 */
export function printed(text: string): string[] {
  const counts = new Map<string, number>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('(Use `node --trace-warnings')) continue;
    let message = line.length > 200 ? `${line.slice(0, 200)}…` : line;
    try {
      const entry = JSON.parse(line) as {
        level?: number;
        msg?: string;
        err?: { code?: string; type?: string; message?: string; stack?: string };
      };
      if (entry.msg?.includes('failing; retrying')) continue;
      const where = entry.err?.stack?.split('\n')[1]?.trim() ?? '';
      message = `${LEVELS[entry.level ?? 0] ?? entry.level} "${entry.msg}"${entry.err ? ` (${entry.err.code ?? entry.err.type}${where ? `, ${where}` : ''})` : ''}`;
    } catch {
      // not JSON: shown as it is
    }
    counts.set(message, (counts.get(message) ?? 0) + 1);
  }
  return [...counts].map(([message, n]) => `${n}× ${message}`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      changes: { type: 'string', default: '50000' },
      devices: { type: 'string', default: '100000' },
      'lag-seconds': { type: 'string', default: '20' },
      rate: { type: 'string', default: '1000' },
      'skip-postgres': { type: 'boolean', default: false },
      links: { type: 'string', default: 'mutual-tls' },
    },
  });
  const links = values.links;
  if (links !== 'mutual-tls' && links !== 'plain-loopback') {
    console.error('--links must be mutual-tls or plain-loopback');
    return 2;
  }
  const changes = Number(values.changes);
  const devices = Number(values.devices);
  const lagSeconds = Number(values['lag-seconds']);
  const rate = Number(values.rate);
  const bad = [
    ['--changes', changes, 1, 1_000_000],
    ['--devices', devices, 1, 1_000_000],
    ['--lag-seconds', lagSeconds, 1, 300],
    ['--rate', rate, 1, 10_000],
  ].find(
    ([, v, min, max]) =>
      !Number.isInteger(v) || (v as number) < (min as number) || (v as number) > (max as number),
  );
  if (bad) {
    console.error(`${bad[0]} must be an integer in [${bad[2]}, ${bad[3]}]`);
    return 2;
  }

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

  const rows: Row[] = [];
  const notes: string[] = [];
  const log = (line: string) => console.error(`… ${line}`);
  const pairs: Array<{ part: string; pair: RegionPair }> = [];
  try {
    const base = await mkdtemp(join(tmpdir(), 'iotdr-bench-replication-'));
    cleanup.defer(`remove ${base}`, () => rm(base, { recursive: true, force: true }));
    const dir = async (name: string) => {
      const path = join(base, name);
      await mkdir(path);
      return path;
    };
    console.log(machine().join('\n'));
    console.log(
      `load:    ${loadavg()[0]?.toFixed(2)} (1-min load average at the start; other work on the machine skews every figure)`,
    );
    console.log(`temp:    ${base}`);
    console.log(
      `links:   ${links === 'mutual-tls' ? 'HTTPS, mutual TLS with site certificates (the default)' : 'plain HTTP with the replicator token (--links plain-loopback)'}`,
    );
    console.log(`sqlite:  ${sqliteVersion(base)} (better-sqlite3), WAL, synchronous=full in the regions`);

    let postgres: RunningPostgres | undefined;
    if (values['skip-postgres']) notes.push('PostgreSQL skipped (--skip-postgres).');
    else {
      log('starting a throwaway PostgreSQL cluster');
      const cluster = await startPostgres();
      if ('skipped' in cluster) notes.push(`PostgreSQL figures skipped: ${cluster.skipped}`);
      else {
        postgres = cluster;
        cleanup.defer('stop PostgreSQL', () => cluster.stop());
        console.log(`postgres: ${await postgresVersion(cluster.url)} (throwaway cluster, fsync=on)`);
      }
    }

    // (a) on SQLite, then (b) on the same two regions.
    {
      const stateDir = await dir('backlog-sqlite');
      const stores = {
        [EAST]: { engine: 'sqlite', path: join(stateDir, 'us-east.db') },
        [WEST]: { engine: 'sqlite', path: join(stateDir, 'us-west.db') },
      } as const;
      const pair = await RegionPair.create({
        stateDir,
        stores,
        cleanup,
        replication: BENCH_REPLICATION,
        links,
      });
      pairs.push({ part: '(a)+(b) SQLite', pair });
      log(`(a) backlog of ${int(changes)} changes, us-east SQLite → us-west SQLite`);
      const a = await backlog(pair, stores[EAST], changes);
      rows.push(applyRow('us-east SQLite → us-west SQLite', a, true));

      log(`(b) ${rate} writes/s into us-east for ${lagSeconds} s`);
      const b = await measureLag(pair, 'steady', {
        rate,
        seconds: lagSeconds,
        warmupSeconds: 2,
        sampleEvery: 10,
        pollMs: 2,
      });
      const setting = `SQLite both, ${int(rate)} writes/s`;
      const work = `${int(b.writes)} changes`;
      rows.push(
        {
          figure: 'replication lag p50, region metric',
          setting,
          work,
          seconds: b.seconds,
          result: `${ms(b.metric.p50Ms)} ms`,
          target: '—',
          met: undefined,
        },
        {
          figure: 'replication lag p99, region metric',
          setting,
          work,
          seconds: b.seconds,
          result: `${ms(b.metric.p99Ms)} ms (${(b.metric.within100Ms * 100).toFixed(2)}% ≤ 100 ms)`,
          target: `≤ ${LAG_P99_TARGET_MS} ms`,
          met: b.metric.within100Ms >= 0.99,
        },
        {
          figure: 'replication lag p50, client',
          setting,
          work: `${int(b.client.samples)} samples`,
          seconds: b.seconds,
          result: `${ms(b.client.p50Ms)} ms`,
          target: '—',
          met: undefined,
        },
        {
          figure: 'replication lag p99, client',
          setting,
          work: `${int(b.client.samples)} samples`,
          seconds: b.seconds,
          result: `${ms(b.client.p99Ms)} ms (max ${ms(b.client.maxMs)})`,
          target: `≤ ${LAG_P99_TARGET_MS} ms`,
          met: b.client.p99Ms <= LAG_P99_TARGET_MS,
        },
      );
      notes.push(
        `(a) SQLite: link states ${states(a)}; us-east at seq ${int(a.lastSeq)} when it served; ${int(a.applied)} applied, ${int(a.processed - a.applied)} stale.`,
        `(b) ${int(b.writes)} writes in ${b.seconds.toFixed(2)} s (${int(b.achievedRate)}/s achieved; PUT in us-east p50 ${ms(b.putP50Ms)} ms, p99 ${ms(b.putP99Ms)} ms); region metric over ${int(b.metric.count)} applied changes, quantiles interpolated in its buckets (5, 10, 25, 50, 100 ms …); client: every 10th write, GET polled every 2 ms.`,
      );
      log('checking both stores hold the same things');
      for (const region of [EAST, WEST] as const) await pair.stop(region);
      await checkSame('(a)+(b) SQLite', stores[EAST], stores[WEST], [KIND.thing], {
        [KIND.thing]: changes + b.allWrites,
      });
    }

    // (a) into PostgreSQL.
    if (postgres) {
      const stateDir = await dir('backlog-postgres');
      const stores = {
        [EAST]: { engine: 'sqlite', path: join(stateDir, 'us-east.db') },
        [WEST]: { engine: 'postgres', url: postgres.url, schema: 'bench_backlog_west' },
      } as const;
      const pair = await RegionPair.create({
        stateDir,
        stores,
        cleanup,
        replication: BENCH_REPLICATION,
        links,
      });
      pairs.push({ part: '(a) PostgreSQL', pair });
      log(`(a) backlog of ${int(changes)} changes, us-east SQLite → us-west PostgreSQL`);
      const a = await backlog(pair, stores[EAST], changes);
      rows.push(applyRow('us-east SQLite → us-west PostgreSQL', a, false));
      notes.push(`(a) PostgreSQL: link states ${states(a)}; ${int(a.applied)} applied.`);
      for (const region of [EAST, WEST] as const) await pair.stop(region);
      await checkSame('(a) PostgreSQL', stores[EAST], stores[WEST], [KIND.thing], { [KIND.thing]: changes });
    }

    // (c) initial sync.
    {
      const stateDir = await dir('initial-sync');
      const stores = {
        [EAST]: { engine: 'sqlite', path: join(stateDir, 'us-east.db') },
        [WEST]: { engine: 'sqlite', path: join(stateDir, 'us-west.db') },
      } as const;
      const pair = await RegionPair.create({
        stateDir,
        stores,
        cleanup,
        replication: BENCH_REPLICATION,
        links,
      });
      pairs.push({ part: '(c)', pair });
      log(`(c) loading ${int(devices)} devices into us-east`);
      const load = await loadDevices(stores[EAST].path, 'device', devices);
      log(`(c) initial sync of us-west`);
      await startWestAlone(pair);
      const c = await timeCatchUp(pair, load.entities, CATCH_UP_TIMEOUT_MS);
      check(c.states.includes('bootstrapping'), `us-west did not copy a snapshot (${states(c)})`);
      // Served by the running us-west, equal to us-east's: a sample of devices over HTTP.
      for (let s = 0; s < 50; s++) {
        const name = thingName('device', Math.floor((s * devices) / 50));
        for (const path of [`/v1/things/${name}`, `/v1/things/${name}/certificates`]) {
          const [e, w] = [await pair.call(EAST, 'GET', path), await pair.call(WEST, 'GET', path)];
          check(
            e.status === 200 && w.status === 200,
            `GET ${path}: us-east ${e.status}, us-west ${w.status}`,
          );
          check(e.body === w.body, `GET ${path} differs: us-east ${e.body}, us-west ${w.body}`);
        }
      }
      rows.push(
        {
          figure: 'initial sync (snapshot copy)',
          setting: 'us-east SQLite → empty us-west SQLite',
          work: `${int(devices)} devices`,
          seconds: c.seconds,
          result: `${int(devices / c.seconds)} devices/s (${int(c.processed / c.seconds)} entities/s)`,
          target: `≤ ${SYNC_TARGET_S} s`,
          met: c.seconds <= SYNC_TARGET_S,
        },
        {
          figure: 'initial sync, reference implementation',
          setting: 'AWS reference design, as published',
          work: `${int(REFERENCE_DEVICES)} devices`,
          seconds: REFERENCE_SECONDS,
          result: `about ${int(REFERENCE_DEVICES / REFERENCE_SECONDS)} devices/s`,
          target: '—',
          met: undefined,
        },
      );
      notes.push(
        `(c) ${int(load.entities)} entities in us-east (each with its change record), loaded in-process in ${(load.seconds.certificates + load.seconds.registry).toFixed(1)} s (${load.seconds.certificates.toFixed(1)} s of it making certificates); link states ${states(c)}; ${int(c.processed)} entities copied.`,
      );
      for (const region of [EAST, WEST] as const) await pair.stop(region);
      log('checking both stores hold the same devices');
      await checkSame(
        '(c)',
        stores[EAST],
        stores[WEST],
        DEVICE_KINDS,
        Object.fromEntries([
          ...[KIND.thing, KIND.certificate, KIND.thingPrincipal, KIND.policyPrincipal].map((k) => [
            k,
            devices,
          ]),
          [KIND.policy, 1],
        ]),
      );
    }

    for (const { part, pair } of pairs) {
      for (const region of [EAST, WEST] as const) {
        for (const line of printed(pair.output(region))) notes.push(`${part}: ${region} printed ${line}`);
      }
    }
    console.log('');
    console.log(table(rows));
    for (const note of notes) console.log(`\n${note}`);
    console.log(`\n1-min load average at the end: ${loadavg()[0]?.toFixed(2)}`);
    const missed = rows.filter((r) => r.met === false);
    console.log(
      `\n${missed.length === 0 ? 'every target met' : `${missed.length} target(s) missed`}; total run time ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`,
    );
    return 0;
  } catch (error) {
    // After Ctrl-C the regions stop under the load: that is not a finding.
    if (!interrupted) console.error('\nbenchmark failed:', error);
    return 1;
  } finally {
    await cleanup.runAll();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

process.exitCode = await main();

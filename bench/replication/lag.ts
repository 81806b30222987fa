/**
 * Replication lag at a steady write rate: the bench PUTs new things into us-east on a fixed
 * schedule (open loop: a write is started when it is due, whether or not earlier ones answered),
 * and measures it twice:
 *
 * - in the region: us-west's `iotdr_replication_lag_seconds` histogram, which its replicator
 *   observes per applied change as (applied here) − (committed in us-east). Read from /metrics
 *   before and after; the quantiles are interpolated inside the histogram's buckets (as
 *   Prometheus' histogram_quantile does), and the share within 100 ms is exact at that bound.
 * - from the client: for a sample of the writes, the time from the 2xx of the PUT in us-east to
 *   the first 200 of GET /v1/things/{name} in us-west, polled every `pollMs`.
 */
import { check, percentile } from '../registry/common.js';
import { thingBody, thingName } from './load.js';
import { EAST, type RegionPair, secondsBetween, WEST } from './regions.js';

export interface LagOptions {
  /** Writes per second. */
  rate: number;
  /** Measured part, in s. */
  seconds: number;
  /** Untimed part at the same rate before it, in s. */
  warmupSeconds: number;
  /** Every n-th write is followed in us-west. */
  sampleEvery: number;
  /** Interval of the client's GET polls in us-west, in ms. */
  pollMs: number;
}

export interface Histogram {
  /** Upper bounds in seconds, ascending, +Inf last. */
  bounds: number[];
  /** Cumulative counts per bound. */
  counts: number[];
}

export interface LagResult {
  /** Writes in the measured part. */
  writes: number;
  /** Writes in all, warm-up included. */
  allWrites: number;
  seconds: number;
  /** Writes answered per second in the measured part. */
  achievedRate: number;
  putP50Ms: number;
  putP99Ms: number;
  metric: { count: number; p50Ms: number; p99Ms: number; within100Ms: number };
  client: { samples: number; p50Ms: number; p99Ms: number; maxMs: number };
}

/** Longest a sampled write may take to show in us-west before the run fails. */
const VISIBLE_TIMEOUT_MS = 10_000;
/** More writes in flight than this and us-east is not keeping up: the run fails. */
const MAX_IN_FLIGHT = 2000;

/** us-west's lag histogram for the link from us-east, from its /metrics text. */
export function lagHistogram(metrics: string): Histogram {
  const rows: Array<[number, number]> = [];
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('iotdr_replication_lag_seconds_bucket{') || !line.includes(`peer="${EAST}"`))
      continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (le !== undefined) rows.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), value]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return { bounds: rows.map((r) => r[0]), counts: rows.map((r) => r[1]) };
}

function minus(after: Histogram, before: Histogram): Histogram {
  if (before.bounds.length === 0) return after;
  check(
    after.bounds.join() === before.bounds.join(),
    'the lag histogram changed its buckets between two reads',
  );
  return { bounds: after.bounds, counts: after.counts.map((c, i) => c - (before.counts[i] ?? 0)) };
}

/** Quantile by linear interpolation inside the bucket that holds it, in seconds. */
export function histogramQuantile(h: Histogram, q: number): number {
  const total = h.counts[h.counts.length - 1] ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  for (let i = 0; i < h.bounds.length; i++) {
    const count = h.counts[i] ?? 0;
    if (count >= rank) {
      const upper = h.bounds[i] ?? 0;
      const lower = i === 0 ? 0 : (h.bounds[i - 1] ?? 0);
      const below = i === 0 ? 0 : (h.counts[i - 1] ?? 0);
      if (!Number.isFinite(upper)) return lower;
      return lower + ((upper - lower) * (rank - below)) / Math.max(1, count - below);
    }
  }
  return Number.NaN;
}

function countAt(h: Histogram, bound: number): number {
  const i = h.bounds.indexOf(bound);
  check(i >= 0, `the lag histogram has no bucket at ${bound} s`);
  return h.counts[i] ?? 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function caughtUp(pair: RegionPair): Promise<void> {
  const lastSeq = await pair.lastSeq(EAST);
  await pair.waitForLink(
    WEST,
    (l) => l.state.type === 'tailing' && l.cursor >= lastSeq && l.lagChanges === 0,
    `us-west at us-east's seq ${lastSeq}`,
    60_000,
    10,
  );
}

/** Both regions must run, us-west tailing. Writes `prefix-000000`… into us-east. */
export async function measureLag(pair: RegionPair, prefix: string, options: LagOptions): Promise<LagResult> {
  await caughtUp(pair);
  let failure: unknown;
  const fail = (error: unknown) => {
    failure ??= error;
  };
  let next = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const putLatencies: number[] = [];
  let lastAnswer = process.hrtime.bigint();
  const visibleMs: number[] = [];

  const put = async (i: number): Promise<bigint> => {
    const name = thingName(prefix, i);
    const t0 = process.hrtime.bigint();
    const r = await pair.call(EAST, 'PUT', `/v1/things/${name}`, JSON.stringify(thingBody(i)));
    const at = process.hrtime.bigint();
    lastAnswer = at;
    check(
      r.status === 201,
      `PUT /v1/things/${name} in us-east answered ${r.status}: ${r.body.slice(0, 200)}`,
    );
    putLatencies.push(secondsBetween(t0, at) * 1000);
    return at;
  };
  const visible = async (i: number, from: bigint): Promise<void> => {
    const name = thingName(prefix, i);
    const deadline = from + BigInt(VISIBLE_TIMEOUT_MS * 1e6);
    for (;;) {
      const r = await pair.call(WEST, 'GET', `/v1/things/${name}`);
      const at = process.hrtime.bigint();
      if (r.status === 200) {
        visibleMs.push(secondsBetween(from, at) * 1000);
        return;
      }
      check(r.status === 404, `GET /v1/things/${name} in us-west answered ${r.status}`);
      check(at < deadline, `${name} not readable in us-west ${VISIBLE_TIMEOUT_MS} ms after its PUT`);
      await sleep(options.pollMs);
    }
  };

  /** Runs `seconds` of the schedule; returns the wall time from its first write to its last answer. */
  const phase = async (seconds: number, sample: boolean): Promise<{ writes: number; seconds: number }> => {
    const first = next;
    const total = Math.round(options.rate * seconds);
    const pending: Array<Promise<void>> = [];
    const start = process.hrtime.bigint();
    let started = 0;
    while (started < total && failure === undefined) {
      const due = Math.min(
        total,
        Math.floor(secondsBetween(start, process.hrtime.bigint()) * options.rate) + 1,
      );
      while (started < due) {
        const i = next++;
        started++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        if (inFlight > MAX_IN_FLIGHT)
          fail(new Error(`${inFlight} writes in flight: us-east is not keeping up`));
        pending.push(
          put(i)
            .then((at) => (sample && i % options.sampleEvery === 0 ? visible(i, at) : undefined))
            .catch(fail)
            .finally(() => {
              inFlight--;
            }),
        );
      }
      await sleep(1);
    }
    await Promise.all(pending);
    if (failure !== undefined) throw failure;
    return { writes: next - first, seconds: secondsBetween(start, lastAnswer) };
  };

  const warm = await phase(options.warmupSeconds, false);
  await caughtUp(pair);
  putLatencies.length = 0;
  const before = lagHistogram(await pair.metrics(WEST));
  const measured = await phase(options.seconds, true);
  await caughtUp(pair);
  const histogram = minus(lagHistogram(await pair.metrics(WEST)), before);

  const total = histogram.counts[histogram.counts.length - 1] ?? 0;
  check(
    total === measured.writes,
    `us-west observed the lag of ${total} changes, ${measured.writes} were written in the measured part`,
  );
  check(visibleMs.length > 0, 'no write was followed in us-west');
  const sorted = Float64Array.from(visibleMs).sort();
  const puts = Float64Array.from(putLatencies).sort();
  return {
    writes: measured.writes,
    allWrites: warm.writes + measured.writes,
    seconds: measured.seconds,
    achievedRate: measured.writes / measured.seconds,
    putP50Ms: percentile(puts, 0.5),
    putP99Ms: percentile(puts, 0.99),
    metric: {
      count: total,
      p50Ms: histogramQuantile(histogram, 0.5) * 1000,
      p99Ms: histogramQuantile(histogram, 0.99) * 1000,
      within100Ms: countAt(histogram, 0.1) / total,
    },
    client: {
      samples: sorted.length,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    },
  };
}

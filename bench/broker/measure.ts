/**
 * The measurements of `npm run bench:broker` over every broker of the run (mosquitto and each
 * iotdr setup): the connection figures, then QoS1 at each level of subscriptions held. Each figure
 * runs on every broker in turn, the order rotating from figure to figure; every QoS1 run starts
 * once the held subscriptions are in place and the brokers (and their Redis) are idle again.
 */
import { check } from '../registry/common.js';
import { type Args, type FigureName, type HeldLevel, heldLabel, heldLevels } from './args.js';
import type { BenchDevice } from './fleet.js';
import { HeldSubscriptions } from './held.js';
import { type Credential, connectionRate, type Measured, qos1Rate, quiet, type Target } from './load.js';
import type { RedisRow, Row } from './report.js';
import { type RunningSetup, spread } from './setups.js';

const DRAIN_TIMEOUT_MS = 30_000;
/** Held sessions connecting at once, per broker. */
const HOLD_CONCURRENCY = 32;
/** How long the brokers may stay busy (closing or opening held sessions) before a measurement starts anyway. */
const SETTLE_MAX_MS = 120_000;

export const mtls = (d: BenchDevice): Credential => ({
  clientId: d.thingName,
  certPem: d.certPem,
  keyPem: d.keyPem,
});
export const token = (d: BenchDevice): Credential => ({
  clientId: d.thingName,
  username: d.thingName,
  password: d.token,
});

/** One broker under measurement: mosquitto, or an iotdr setup. */
export interface Broker {
  label: string;
  targets: { mtls: Target; token: Target };
  /** Absent for mosquitto. */
  setup?: RunningSetup;
  held: HeldSubscriptions;
  /** Its processes (a region's with its workers, its Redis), waited on to be idle. */
  pids: number[];
}

/** The bench's clients: devices taking turns to connect, QoS1's publishers and subscribers. */
export interface Load {
  connecting: readonly BenchDevice[];
  publishers: readonly Credential[];
  subscribers: readonly Credential[];
}

type ConnectionFigure = Exclude<FigureName, 'qos1'>;
const CONNECTION_FIGURES: Record<ConnectionFigure, string> = {
  mtls: 'mTLS connections/s',
  resumed: 'mTLS resumed connections/s',
  token: 'token connections/s',
};

/** `list` starting at `by` (mod its length): the order brokers take their turn in. */
const rotate = <T>(list: readonly T[], by: number): T[] =>
  list.map((_, i) => list[(i + by) % list.length] as T);
const int = (n: number) => Math.round(n).toLocaleString('en-US');
export const elapsed = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

export async function measureAll(
  brokers: readonly Broker[],
  args: Args,
  load: Load,
  log: (line: string) => void,
): Promise<{ rows: Row[]; redisRows: RedisRow[] }> {
  const rows: Row[] = [];
  const redisRows: RedisRow[] = [];
  const levels = args.figures.includes('qos1') ? heldLevels(args) : [];
  const connectionFigures = args.figures.filter((f): f is ConnectionFigure => f !== 'qos1');
  const total = brokers.length * (connectionFigures.length + levels.length);
  let done = 0;
  const timing = { warmupMs: args.warmup * 1000, durationMs: args.seconds * 1000 };
  const run = async <T>(figure: string, b: Broker, measure: () => Promise<T>): Promise<T> => {
    log(`[${++done}/${total}] ${figure} on ${b.label}: ${args.warmup} s warm-up, ${args.seconds} s timed`);
    try {
      return await measure();
    } catch (error) {
      throw new Error(`${figure} on ${b.label}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
  };
  const row = (figure: string, held: string, b: Broker, inFlight: string, result: Measured): Row => ({
    figure,
    held,
    broker: b.setup ? 'iotdr' : 'mosquitto',
    label: b.label,
    inFlight,
    result,
  });

  let turn = 0;
  for (const name of connectionFigures) {
    const figure = CONNECTION_FIGURES[name];
    const credentials = load.connecting.map(name === 'token' ? token : mtls);
    for (const b of rotate(brokers, turn++)) {
      const result = await run(figure, b, () =>
        connectionRate(name === 'token' ? b.targets.token : b.targets.mtls, credentials, {
          ...timing,
          concurrency: args.concurrency,
          resume: name === 'resumed',
        }),
      );
      rows.push(row(figure, '0', b, String(args.concurrency), result));
      log(`   ${int(result.perSecond)}/s`);
    }
  }

  for (const level of levels) {
    const held = heldLabel(level);
    await hold(brokers, level, args.filters, log);
    for (const b of rotate(brokers, turn++)) {
      const { acked, delivered, redis } = await run('QoS1 messages/s', b, () => qos1(b, args, load, log));
      const inFlight = `${args.publishers} × ${args.window}`;
      rows.push(
        row('QoS1 PUBACKs/s', held, b, inFlight, acked),
        row('QoS1 deliveries/s', held, b, inFlight, delivered),
      );
      if (redis) redisRows.push({ label: b.label, held, ...redis });
    }
  }
  // Released before the brokers stop, so each stops within its time and its exit status says something.
  await hold(brokers, { count: 0 }, args.filters, log);
  return { rows, redisRows };
}

/**
 * One QoS1 run on `b` (load.ts checks every message arrives exactly once); on a Redis-backed
 * setup also what Redis held and did, and on workers where the clients landed.
 */
async function qos1(
  b: Broker,
  args: Args,
  load: Load,
  log: (line: string) => void,
): Promise<{ acked: Measured; delivered: Measured; redis?: Omit<RedisRow, 'label' | 'held'> }> {
  b.held.checkHeld();
  const redis = b.setup?.redis;
  const before = await redis?.commands();
  let pubsub: { channels: number; patterns: number } | undefined;
  let placed: ReturnType<typeof spread> | undefined;
  const ids = (list: readonly Credential[]) => list.map((c) => c.clientId);
  const r = await qos1Rate(b.targets.mtls, load.publishers, load.subscribers, {
    warmupMs: args.warmup * 1000,
    durationMs: args.seconds * 1000,
    window: args.window,
    payloadBytes: args.payload,
    drainTimeoutMs: DRAIN_TIMEOUT_MS,
    connected: async () => {
      pubsub = await redis?.pubsub();
      if (b.setup === undefined || b.setup.setup.workers < 2) return;
      const nodes = await b.setup.placement([...ids(load.publishers), ...ids(load.subscribers)]);
      placed = spread(nodes, ids(load.publishers), ids(load.subscribers));
      log(
        `   clients per worker: ${placed.text}; ${Math.round(placed.crossing * 100)}% of deliveries cross workers`,
      );
      if (placed.crossing === 0) log('   warning: no delivery crosses workers in this run');
    },
  });
  b.held.checkHeld();
  log(
    `   ${int(r.published)} messages published, each PUBACKed and delivered exactly once; ${int(r.acked.perSecond)} PUBACKs/s`,
  );
  if (!redis || !before || !pubsub) return { acked: r.acked, delivered: r.delivered };
  const after = await redis.commands();
  const publishes = after.publish.calls - before.publish.calls;
  return {
    acked: r.acked,
    delivered: r.delivered,
    redis: {
      ...pubsub,
      commandsPerMessage: (after.all.calls - before.all.calls) / r.published,
      usecPerMessage: (after.all.usec - before.all.usec) / r.published,
      publishesPerMessage: publishes / r.published,
      usecPerPublish: publishes === 0 ? 0 : (after.publish.usec - before.publish.usec) / publishes,
      ...(placed === undefined ? {} : { crossing: placed.crossing, spread: placed.text }),
    },
  };
}

/**
 * Puts `level` in place on every broker at once: releases what is held when the kind changes (or
 * for none), adds sessions and filters up to the count, then waits until the brokers and their
 * Redis are idle again, so the held sessions' own connecting stays out of the timed part. Checks
 * that each Redis holds at least that many distinct channels (exact) or patterns (wildcard).
 */
async function hold(
  brokers: readonly Broker[],
  level: HeldLevel,
  filters: number,
  log: (line: string) => void,
): Promise<void> {
  const kind = 'kind' in level ? level.kind : undefined;
  const release = brokers.filter((b) => b.held.kind !== undefined && b.held.kind !== kind);
  if (release.length > 0) {
    const t0 = performance.now();
    const what = release[0]?.held;
    log(`releasing ${int(what?.count ?? 0)} ${what?.kind} subscriptions`);
    await Promise.all(release.map((b) => b.held.release()));
    await settle(release, log);
    log(`   released in ${elapsed(t0)}`);
  }
  if (kind === undefined) return;
  const sessions = HeldSubscriptions.sessionsFor(level.count, filters);
  log(
    `holding ${heldLabel(level)} subscriptions on every broker: ${sessions} idle sessions, up to ${filters} filters each`,
  );
  await Promise.all(
    brokers.map(async (b) => {
      const t0 = performance.now();
      await b.held.holdUpTo(level.count, kind, HOLD_CONCURRENCY);
      log(`   ${b.label}: ${int(b.held.count)} held (${elapsed(t0)})`);
    }),
  );
  await settle(brokers, log);
  for (const b of brokers) {
    const redis = b.setup?.redis;
    if (!redis) continue;
    const { channels, patterns } = await redis.pubsub();
    log(`   ${b.label}: Redis holds ${int(channels)} channels, ${int(patterns)} patterns`);
    const what = kind === 'exact' ? 'channels' : 'patterns';
    check(
      (kind === 'exact' ? channels : patterns) >= level.count,
      `${b.label}: Redis holds fewer ${what} than the ${level.count} subscriptions held`,
    );
  }
}

async function settle(brokers: readonly Broker[], log: (line: string) => void): Promise<void> {
  const t0 = performance.now();
  const waited = await quiet(
    brokers.flatMap((b) => b.pids),
    { maxMs: SETTLE_MAX_MS },
  );
  if (waited === undefined)
    log(`   warning: the brokers were still busy after ${SETTLE_MAX_MS / 1000} s; measuring anyway`);
  else if (waited > 2_000) log(`   brokers idle again after ${elapsed(t0)}`);
}

import { IotdrError } from '../../common/index.js';
import {
  type LoadedConfig,
  primaryRegion,
  type RegionConfig,
  regionByName,
  regionsByPriority,
} from '../../config/index.js';
import type { ApiClient, SuccessOf } from '../../http/index.js';
import type { DigestEntry, KindDigest, LinkState } from '../../replication/index.js';
import { DIGEST_BUCKETS, EMPTY_DIGEST, REPLICATION_ROUTES } from '../../replication/index.js';
import { apiOf, table } from '../api.js';
import { loadFor, parseCommand, usageError, type Values } from '../args.js';
import type { CliIo, Command } from '../io.js';

/** Differing keys diff lists unless --limit says otherwise. */
export const DEFAULT_DIFF_LIMIT = 1000;

const USAGE = `usage: iotdr replication <subcommand> [options]

subcommands:
  status                          every link of a region: state, cursor, lag, errors, dead letters
  diff                            compare two regions' registries by digest, list the keys that differ
  dead-letters list               changes a region could not apply (without their documents)
  dead-letters show PEER ID       one dead letter with its whole change, as JSON (admin)
  dead-letters retry PEER ID      apply a dead letter again
  dead-letters discard PEER ID    drop a dead letter

options:
  --region NAME    the region to ask (status, dead-letters; default: the primary)
  --from NAME      diff: the first region (default: the highest-priority region)
  --to NAME        diff: the second region (default: the next one by priority)
  --limit N        diff: list at most N differing keys, 0 for all (default ${DEFAULT_DIFF_LIMIT})
  --peer NAME      dead-letters list: only those received from this peer
  --json           print JSON instead of tables (status, diff, dead-letters list)
  --config FILE    configuration file
  -h, --help       show this help

diff exits 0 when the regions hold the same live entities, 1 when they differ, 2 on a usage
error or when a region cannot be compared. The admin token of <state>/secrets/admin.token
authorizes the calls.`;
/** How long a digest may take to compute: a region reads every entity for it (ms). */
const DIGEST_TIMEOUT_MS = 600_000;
/** Other calls (ms). */
/** A long comparison reports its progress on stderr this often (ms). */
const PROGRESS_INTERVAL_MS = 2000;
/** Differing entries asked for per request. */
const BUCKET_PAGE = 5000;

const SPEC = {
  name: 'replication',
  usage: USAGE,
  options: {
    region: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    limit: { type: 'string' },
    peer: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: true,
} as const;
type Options = Values<(typeof SPEC)['options']>;

class UsageError extends Error {}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`;
}

const ago = (at: number | null, now: number) =>
  at === null ? 'never' : `${duration(Math.max(0, now - at))} ago`;
const orDash = (v: number | null) => (v === null ? '-' : String(v));

function stateText(state: LinkState, now: number): string {
  switch (state.type) {
    case 'bootstrapping':
      return `bootstrapping (${state.copied} copied, then from seq ${state.watermark})`;
    case 'retrying':
      return `retrying (attempt ${state.attempt}, next in ${duration(Math.max(0, state.nextAttemptAt - now))})`;
    default:
      return state.type;
  }
}

// --- status -------------------------------------------------------------------------------------

async function status(api: ApiClient, values: Options, io: CliIo): Promise<number> {
  const answer = await api.request(REPLICATION_ROUTES.status);
  if (values.json) {
    io.out(JSON.stringify(answer, null, 2));
    return 0;
  }
  if (answer.links.length === 0) {
    io.out(`${answer.region} has no replication links (one region, or replication.enabled is false)`);
    return 0;
  }
  const now = Date.now();
  const rows = [
    [
      'PEER',
      'STATE',
      'CURSOR',
      'PEER SEQ',
      'LAG',
      'LAG TIME',
      'LAST CONTACT',
      'APPLIED',
      'STALE',
      'DEAD LETTERS',
      'LAST ERROR',
    ],
  ];
  for (const l of answer.links) {
    rows.push([
      l.peer,
      stateText(l.state, now),
      String(l.cursor),
      orDash(l.peerLastSeq),
      orDash(l.lagChanges),
      l.lagMs === null ? '-' : duration(l.lagMs),
      ago(l.lastContactAt, now),
      String(l.applied),
      String(l.stale),
      String(l.deadLetters),
      l.lastError === null ? '-' : `${l.lastError.message} (${ago(l.lastError.at, now)})`,
    ]);
  }
  io.out(`replication into ${answer.region}:`);
  for (const line of table(rows)) io.out(line);
  return 0;
}

// --- diff ---------------------------------------------------------------------------------------

type DigestAnswer = SuccessOf<typeof REPLICATION_ROUTES.digest>;

interface KindComparison {
  kind: string;
  from: { count: number; digest: string };
  to: { count: number; digest: string };
  equal: boolean;
  differingBuckets: number[];
}

interface Difference {
  kind: string;
  key: string;
  /** The entity in the first region, null when it has none (live). */
  from: DigestEntry | null;
  to: DigestEntry | null;
}

const EMPTY_KIND = (kind: string): KindDigest => ({
  kind,
  count: 0,
  digest: EMPTY_DIGEST,
  buckets: Array.from({ length: DIGEST_BUCKETS }, () => EMPTY_DIGEST),
});

function compareKinds(a: DigestAnswer, b: DigestAnswer): KindComparison[] {
  const kinds = [...new Set([...a.kinds, ...b.kinds].map((k) => k.kind))].sort();
  return kinds.map((kind) => {
    const x = a.kinds.find((k) => k.kind === kind) ?? EMPTY_KIND(kind);
    const y = b.kinds.find((k) => k.kind === kind) ?? EMPTY_KIND(kind);
    const differingBuckets: number[] = [];
    for (let i = 0; i < DIGEST_BUCKETS; i++) if (x.buckets[i] !== y.buckets[i]) differingBuckets.push(i);
    return {
      kind,
      from: { count: x.count, digest: x.digest },
      to: { count: y.count, digest: y.digest },
      equal: x.digest === y.digest && x.count === y.count && differingBuckets.length === 0,
      differingBuckets,
    };
  });
}

/** The entries of some buckets of a kind in key order, a page at a time. */
async function* bucketEntries(api: ApiClient, kind: string, buckets: number[]): AsyncGenerator<DigestEntry> {
  let after: string | undefined;
  do {
    const page = await api.request(REPLICATION_ROUTES.bucket, {
      params: { kind, buckets: buckets.join(',') },
      query: { limit: BUCKET_PAGE, after },
      timeoutMs: DIGEST_TIMEOUT_MS,
    });
    yield* page.entries;
    after = page.next;
  } while (after !== undefined);
}

/** Stores order keys by UTF-8 bytes (SQLite BINARY, PostgreSQL "C"); JS strings by UTF-16 units. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const sameWrite = (a: DigestEntry, b: DigestEntry) =>
  a.version === b.version &&
  a.hlc.wall === b.hlc.wall &&
  a.hlc.counter === b.hlc.counter &&
  a.origin === b.origin;

/**
 * Walks the differing buckets of both regions side by side in key order (a merge join, one page
 * per side in memory) and calls `found` for each key whose live entity is missing on one side or
 * was last written by a different write. Stops early when `found` returns false.
 */
async function diffKind(
  from: ApiClient,
  to: ApiClient,
  kind: string,
  buckets: number[],
  found: (d: Difference) => boolean,
  seen: () => void,
): Promise<void> {
  const a = bucketEntries(from, kind, buckets);
  const b = bucketEntries(to, kind, buckets);
  try {
    let [x, y] = await Promise.all([a.next(), b.next()]);
    while (!x.done || !y.done) {
      seen();
      const order = x.done ? 1 : y.done ? -1 : compareKeys(x.value.key, y.value.key);
      let more = true;
      if (order < 0 && !x.done) {
        more = found({ kind, key: x.value.key, from: x.value, to: null });
        x = await a.next();
      } else if (order > 0 && !y.done) {
        more = found({ kind, key: y.value.key, from: null, to: y.value });
        y = await b.next();
      } else if (!x.done && !y.done) {
        if (!sameWrite(x.value, y.value))
          more = found({ kind, key: x.value.key, from: x.value, to: y.value });
        [x, y] = await Promise.all([a.next(), b.next()]);
      }
      if (!more) return;
    }
  } finally {
    await Promise.all([a.return(undefined), b.return(undefined)]);
  }
}

function entryText(e: DigestEntry | null): string {
  if (e === null) return 'missing';
  return `v${e.version} ${e.origin} ${new Date(e.hlc.wall).toISOString()}`;
}

function pickRegions(loaded: LoadedConfig, values: Options): [RegionConfig, RegionConfig] {
  const ordered = regionsByPriority(loaded.config);
  const byName = (name: string) => {
    const r = ordered.find((x) => x.name === name);
    if (!r)
      throw new UsageError(`no region named '${name}'; configured: ${ordered.map((x) => x.name).join(', ')}`);
    return r;
  };
  const from = values.from === undefined ? undefined : byName(values.from);
  const to = values.to === undefined ? undefined : byName(values.to);
  const first = from ?? ordered.find((r) => r !== to);
  const second = to ?? ordered.find((r) => r !== first);
  if (!first || !second) throw new UsageError('diff needs two regions; the configuration has one');
  if (first === second) throw new UsageError(`--from and --to are both ${first.name}`);
  return [first, second];
}

async function diff(loaded: LoadedConfig, values: Options, limit: number, io: CliIo): Promise<number> {
  const [fromRegion, toRegion] = pickRegions(loaded, values);
  const from = await apiOf(loaded, fromRegion);
  const to = await apiOf(loaded, toRegion);
  const started = Date.now();
  let phase = `waiting for the digests of ${from.name} and ${to.name}`;
  const ticker = setInterval(
    () => io.err(`iotdr replication diff: ${phase} (${duration(Date.now() - started)})`),
    PROGRESS_INTERVAL_MS,
  );
  ticker.unref();
  const differences: Difference[] = [];
  let truncated = false;
  let kinds: KindComparison[];
  try {
    const [a, b] = await Promise.all([
      from.request(REPLICATION_ROUTES.digest, { timeoutMs: DIGEST_TIMEOUT_MS }),
      to.request(REPLICATION_ROUTES.digest, { timeoutMs: DIGEST_TIMEOUT_MS }),
    ]);
    if (a.algorithm !== b.algorithm) {
      throw new IotdrError(
        'IOTDR_CLI_DIGEST_ALGORITHM',
        `${from.name} digests with ${a.algorithm}, ${to.name} with ${b.algorithm}: upgrade both to compare`,
      );
    }
    kinds = compareKinds(a, b);
    for (const k of kinds) {
      if (k.equal || truncated) continue;
      let compared = 0;
      const listedBefore = differences.length;
      phase = `comparing ${k.kind} in ${k.differingBuckets.length} differing buckets`;
      await diffKind(
        from,
        to,
        k.kind,
        k.differingBuckets,
        (d) => {
          if (limit > 0 && differences.length >= limit) {
            truncated = true;
            return false;
          }
          differences.push(d);
          return true;
        },
        () => {
          compared++;
          phase = `comparing ${k.kind} in ${k.differingBuckets.length} differing buckets: ${compared} entries read, ${differences.length - listedBefore} differ`;
        },
      );
    }
  } finally {
    clearInterval(ticker);
  }
  const identical = kinds.every((k) => k.equal);
  if (values.json) {
    io.out(
      JSON.stringify({ from: from.name, to: to.name, identical, kinds, differences, truncated }, null, 2),
    );
    return identical ? 0 : 1;
  }
  const shown = kinds.filter((k) => !k.equal || k.from.count > 0);
  const summary = [['KIND', from.name, to.name, 'DIGEST']];
  for (const k of shown) {
    summary.push([
      k.kind,
      String(k.from.count),
      String(k.to.count),
      k.equal ? 'equal' : `differs in ${k.differingBuckets.length} of ${DIGEST_BUCKETS} buckets`,
    ]);
  }
  for (const line of table(summary)) io.out(line);
  const total = kinds.reduce((n, k) => n + k.from.count, 0);
  if (identical) {
    io.out('');
    io.out(`${from.name} and ${to.name} are identical: ${total} live entities`);
    return 0;
  }
  io.out('');
  const rows = [['KIND', 'KEY', from.name, to.name]];
  for (const d of differences) rows.push([d.kind, d.key, entryText(d.from), entryText(d.to)]);
  for (const line of table(rows)) io.out(line);
  io.out('');
  const missingTo = differences.filter((d) => d.to === null).length;
  const missingFrom = differences.filter((d) => d.from === null).length;
  io.out(
    `${from.name} and ${to.name} differ: ${differences.length}${truncated ? '+' : ''} keys (${missingTo} missing in ${to.name}, ${missingFrom} missing in ${from.name}, ${differences.length - missingTo - missingFrom} written differently)`,
  );
  if (truncated) io.out(`listing stopped at ${limit} keys; --limit 0 lists them all`);
  else if (differences.length === 0) {
    // The digests moved between the two reads: writes or replication in flight.
    io.out('no key differs any more: changes were in flight; run diff again');
  }
  return 1;
}

// --- dead letters -------------------------------------------------------------------------------

async function deadLetters(api: ApiClient, args: string[], values: Options, io: CliIo): Promise<number> {
  const [action, peer = '', id = ''] = args;
  if (action === 'retry') {
    const { outcome } = await api.request(REPLICATION_ROUTES.retryDeadLetter, { params: { peer, id } });
    if (outcome === 'dead-letter') {
      io.err(
        `dead letter ${id} from ${peer} still cannot be applied in ${api.name}; it stays (see 'iotdr replication dead-letters list')`,
      );
      return 1;
    }
    io.out(
      outcome === 'applied'
        ? `dead letter ${id} from ${peer} applied in ${api.name}`
        : `dead letter ${id} from ${peer} was older than what ${api.name} holds; dropped as stale`,
    );
    return 0;
  }
  if (action === 'show') {
    io.out(
      JSON.stringify(await api.request(REPLICATION_ROUTES.deadLetter, { params: { peer, id } }), null, 2),
    );
    return 0;
  }
  if (action === 'discard') {
    await api.request(REPLICATION_ROUTES.discardDeadLetter, { params: { peer, id } });
    io.out(`dead letter ${id} from ${peer} discarded in ${api.name}`);
    return 0;
  }
  const { items } = await api.request(REPLICATION_ROUTES.deadLetters, { query: { peer: values.peer } });
  if (values.json) {
    io.out(JSON.stringify(items, null, 2));
    return 0;
  }
  if (items.length === 0) {
    io.out(`no dead letters in ${api.name}`);
    return 0;
  }
  const rows = [['PEER', 'ID', 'KIND', 'KEY', 'OP', 'ORIGIN', 'AT', 'ATTEMPTS', 'REASON']];
  for (const l of items) {
    rows.push([
      l.peer,
      l.id,
      l.kind,
      l.key,
      l.op,
      l.origin,
      new Date(l.at).toISOString(),
      String(l.attempts),
      l.reason,
    ]);
  }
  for (const line of table(rows)) io.out(line);
  return 0;
}

// --- entry --------------------------------------------------------------------------------------

/** Checks the subcommand and its arguments; returns what is wrong, or undefined. */
function invalid(sub: string | undefined, rest: string[], values: Options): string | undefined {
  if (sub === 'status' || sub === 'diff') {
    if (rest.length > 0) return `${sub} takes no arguments`;
    if (sub === 'status' && (values.from || values.to)) return 'status takes --region, not --from/--to';
    if (sub === 'diff' && values.region) return 'diff takes --from and --to, not --region';
    return undefined;
  }
  if (sub === 'dead-letters') {
    const [action, ...args] = rest;
    if (action === 'list') return args.length === 0 ? undefined : 'dead-letters list takes no arguments';
    if (action === 'retry' || action === 'discard' || action === 'show') {
      return args.length === 2 ? undefined : `dead-letters ${action} needs PEER and ID`;
    }
    return action === undefined
      ? 'dead-letters needs list, show, retry or discard'
      : `unknown action '${action}'`;
  }
  return sub === undefined ? 'a subcommand is required' : `unknown subcommand '${sub}'`;
}

export const replicationCommand: Command = async (argv, io: CliIo) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [sub, ...rest] = positionals;
  const bad = (message: string) => usageError(SPEC, io, message);
  const problem = invalid(sub, rest, values);
  if (problem !== undefined) return bad(problem);
  const limit = values.limit === undefined ? DEFAULT_DIFF_LIMIT : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 0)
    return bad(`--limit is a whole number ≥ 0, not '${values.limit}'`);

  const loaded = await loadFor(io, values);
  if (sub === 'diff') {
    // Like diff(1): 1 means the registries differ, so every other failure is 2.
    try {
      return await diff(loaded, values, limit, io);
    } catch (error) {
      if (error instanceof UsageError) return bad(error.message);
      if (!(error instanceof IotdrError)) throw error;
      io.err(`iotdr replication diff: ${error.message} (${error.code})`);
      for (const issue of error.issues) io.err(`  ${issue.path}: ${issue.message}`);
      return 2;
    }
  }
  const region = values.region ? regionByName(loaded.config, values.region) : primaryRegion(loaded.config);
  const api = await apiOf(loaded, region);
  return sub === 'status' ? status(api, values, io) : deadLetters(api, rest, values, io);
};

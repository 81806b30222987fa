/**
 * The broker figures as Markdown tables: per figure and subscriptions held, a row for each iotdr
 * setup with its rate divided by mosquitto's, then mosquitto's row.
 */
import type { Measured } from './load.js';

export type BrokerName = 'iotdr' | 'mosquitto';

export interface Row {
  /** What is measured, e.g. "mTLS connections/s". */
  figure: string;
  /** Subscriptions held while it ran, e.g. "10,000 exact"; "0" when none. */
  held: string;
  broker: BrokerName;
  /** Who ran it, e.g. "iotdr, 2 workers + Redis" or "mosquitto". */
  label: string;
  /** Connections or messages in flight, as text (e.g. "4 × 16"). */
  inFlight: string;
  result: Measured;
}

/** What Redis did for one QoS1 run of a Redis-backed setup. */
export interface RedisRow {
  label: string;
  held: string;
  /** Distinct channels and patterns Redis held during the run (all nodes, the QoS1 subscriber's included). */
  channels: number;
  patterns: number;
  /** Redis commands per message published (persistence included), over the whole run (warm-up and drain included). */
  commandsPerMessage: number;
  /** µs Redis spent per message published, all commands (its own commandstats). */
  usecPerMessage: number;
  /** Redis PUBLISH commands per message published, over the whole run. */
  publishesPerMessage: number;
  /** µs Redis spent per PUBLISH (its own commandstats). */
  usecPerPublish: number;
  /** Share of deliveries whose publisher and subscriber were on different broker nodes; undefined with one node. */
  crossing?: number;
  /** Per node, its subscribers and publishers. */
  spread?: string;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => (Number.isNaN(n) ? '' : n < 10 ? n.toFixed(2) : n.toFixed(1));
const usec = (n: number): string => (n < 10 ? n.toFixed(2) : int(n));
const pct = (share: number | undefined): string => (share === undefined ? '' : `${Math.round(share * 100)}%`);

/** This iotdr row's rate divided by mosquitto's, for the same figure with the same subscriptions held. */
export function ratio(rows: readonly Row[], row: Row): number | undefined {
  const peer = rows.find((r) => r.broker === 'mosquitto' && r.figure === row.figure && r.held === row.held);
  if (row.broker !== 'iotdr' || !peer || peer.result.perSecond === 0) return undefined;
  return row.result.perSecond / peer.result.perSecond;
}

/**
 * Rows grouped per figure and held subscriptions (in the order first measured), within a group in
 * the order of `labels` (the iotdr setups, then mosquitto).
 */
export function grouped<T extends { held: string; label: string; figure?: string }>(
  rows: readonly T[],
  labels: readonly string[],
): T[] {
  const key = (r: T) => `${r.figure ?? ''}\u0000${r.held}`;
  const groups = [...new Set(rows.map(key))];
  return [...rows].sort(
    (a, b) =>
      groups.indexOf(key(a)) - groups.indexOf(key(b)) || labels.indexOf(a.label) - labels.indexOf(b.label),
  );
}

/** Rows aligned, numbers to the right. */
function markdown(head: string[], cells: string[][], left: ReadonlySet<number>): string {
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((r) => (r[c] ?? '').length)));
  const line = (row: string[]): string =>
    `| ${row.map((cell, c) => (left.has(c) ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (left.has(c) ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(head), rule, ...cells.map(line)].join('\n');
}

export function table(rows: readonly Row[]): string {
  const head = [
    'figure',
    'held',
    'broker',
    'in flight',
    'count',
    's',
    'per second',
    'p50 ms',
    'p99 ms',
    'broker CPU',
    'Redis CPU',
    'load CPU',
    '÷ mosquitto',
  ];
  const cells = rows.map((r) => {
    const q = ratio(rows, r);
    return [
      r.figure,
      r.held,
      r.label,
      r.inFlight,
      int(r.result.count),
      r.result.seconds.toFixed(2),
      int(r.result.perSecond),
      ms(r.result.p50Ms),
      ms(r.result.p99Ms),
      pct(r.result.cpu.broker),
      pct(r.result.cpu.redis),
      pct(r.result.cpu.client),
      q === undefined ? '' : q.toFixed(2),
    ];
  });
  return markdown(head, cells, new Set([0, 1, 2]));
}

export function redisTable(rows: readonly RedisRow[]): string {
  const head = [
    'broker',
    'held',
    'Redis channels',
    'Redis patterns',
    'commands per message',
    'Redis µs per message',
    'PUBLISH per message',
    'µs per PUBLISH',
    'deliveries across nodes',
    'clients per node',
  ];
  const cells = rows.map((r) => [
    r.label,
    r.held,
    int(r.channels),
    int(r.patterns),
    r.commandsPerMessage.toFixed(2),
    usec(r.usecPerMessage),
    r.publishesPerMessage.toFixed(2),
    usec(r.usecPerPublish),
    pct(r.crossing),
    r.spread ?? '',
  ]);
  return markdown(head, cells, new Set([0, 1, 9]));
}

/** One line per figure and held subscriptions: each iotdr setup's ratio to mosquitto. */
export function ratioLines(rows: readonly Row[]): string[] {
  const keys = [...new Set(rows.map((r) => `${r.figure}\u0000${r.held}`))];
  return keys.map((key) => {
    const [figure, held] = key.split('\u0000') as [string, string];
    const ratios = rows
      .filter((r) => r.broker === 'iotdr' && r.figure === figure && r.held === held)
      .map((r) => {
        const q = ratio(rows, r);
        return `${r.label} ${q === undefined ? '—' : q.toFixed(2)}`;
      });
    return `${figure}${held === '0' ? '' : `, ${held} held`}: ÷ mosquitto: ${ratios.join('; ')}`;
  });
}

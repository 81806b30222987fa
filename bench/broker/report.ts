/** The broker figures as one Markdown table: per figure a row for each broker, iotdr's with the ratio. */
import type { Measured } from './load.js';

export type BrokerName = 'iotdr' | 'mosquitto';

export interface Row {
  /** What is measured, e.g. "mTLS connections/s". */
  figure: string;
  broker: BrokerName;
  /** Connections or messages in flight, as text (e.g. "4 × 16"). */
  inFlight: string;
  result: Measured;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => (Number.isNaN(n) ? '' : n < 10 ? n.toFixed(2) : n.toFixed(1));
const pct = (share: number): string => `${Math.round(share * 100)}%`;

/** iotdr's rate divided by mosquitto's, for the same figure. */
export function ratio(rows: readonly Row[], figure: string): number | undefined {
  const of = (broker: BrokerName) => rows.find((r) => r.figure === figure && r.broker === broker);
  const [iotdr, mosquitto] = [of('iotdr'), of('mosquitto')];
  if (!iotdr || !mosquitto || mosquitto.result.perSecond === 0) return undefined;
  return iotdr.result.perSecond / mosquitto.result.perSecond;
}

export function table(rows: readonly Row[]): string {
  const head = [
    'figure',
    'broker',
    'in flight',
    'count',
    's',
    'per second',
    'p50 ms',
    'p99 ms',
    'broker CPU',
    'load CPU',
    'iotdr ÷ mosquitto',
  ];
  const cells = rows.map((r) => {
    const q = r.broker === 'iotdr' ? ratio(rows, r.figure) : undefined;
    return [
      r.figure,
      r.broker,
      r.inFlight,
      int(r.result.count),
      r.result.seconds.toFixed(2),
      int(r.result.perSecond),
      ms(r.result.p50Ms),
      ms(r.result.p99Ms),
      pct(r.result.cpu.broker),
      pct(r.result.cpu.client),
      q === undefined ? '' : q.toFixed(2),
    ];
  });
  const right = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((r) => (r[c] ?? '').length)));
  const line = (row: string[]): string =>
    `| ${row.map((cell, c) => (right.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (right.has(c) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(head), rule, ...cells.map(line)].join('\n');
}

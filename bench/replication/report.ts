/** The replication figures as rows of one Markdown table, each beside its target. */

export interface Row {
  /** What is measured, e.g. "sustained apply rate". */
  figure: string;
  /** Where: stores and settings. */
  setting: string;
  /** How much work the figure covers, e.g. "50,003 changes". */
  work: string;
  /** Wall time of the measured part. */
  seconds: number;
  /** The figure with its unit, e.g. "12,345 changes/s". */
  result: string;
  /** The goal as text, e.g. "≥ 10,000 changes/s"; '—' when the figure has none. */
  target: string;
  /** Whether the goal was met; undefined when there is none. */
  met: boolean | undefined;
}

export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
export const ms = (n: number): string => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));

export function table(rows: Row[]): string {
  const head = ['figure', 'stores / setting', 'work', 's', 'result', 'target', 'met'];
  const cells = rows.map((r) => [
    r.figure,
    r.setting,
    r.work,
    r.seconds.toFixed(2),
    r.result,
    r.target,
    r.met === undefined ? '—' : r.met ? 'yes' : '**NO**',
  ]);
  const right = new Set([2, 3, 4]);
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((r) => (r[c] ?? '').length)));
  const line = (row: string[]): string =>
    `| ${row.map((cell, c) => (right.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (right.has(c) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(head), rule, ...cells.map(line)].join('\n');
}

/** The analytics and event-bus figures as rows of one Markdown table, each under its bus engine. */

export interface EngineRow {
  /** The region's event bus: `sqlite` or `jetstream`. */
  engine: string;
  /** What is measured, e.g. "ingest, 0 → caught up". */
  figure: string;
  /** Where and how: devices, processes, appends in flight… */
  setting: string;
  /** How much work the figure covers, e.g. "100,000 events". */
  work: string;
  /** Wall time of the measured part. */
  seconds: number;
  /** The figure with its unit. */
  result: string;
}

export function engineTable(rows: EngineRow[]): string {
  const head = ['engine', 'figure', 'setting', 'work', 's', 'result'];
  const cells = rows.map((r) => [r.engine, r.figure, r.setting, r.work, r.seconds.toFixed(2), r.result]);
  const right = new Set([3, 4, 5]);
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((r) => (r[c] ?? '').length)));
  const line = (row: string[]): string =>
    `| ${row.map((cell, c) => (right.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (right.has(c) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(head), rule, ...cells.map(line)].join('\n');
}

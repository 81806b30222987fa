/**
 * Drills for every fault (`npm run bench:drill`): `iotdr drill --devices N --auth A --fault F --json`
 * for each fault in turn, each from its own fresh state directory, as a user runs it (the compiled
 * CLI when `dist/` exists, the source through tsx otherwise), and one Markdown table of the reports
 * against the targets: every device reconnected, 0 messages lost, RTO ≤ 1.5 × the physical limit
 * (detection + the fleet at the ceiling the drill measured on the secondary in the same run).
 *
 * Options: `--devices N` (default 1000), `--auth mtls|token` (default mtls), `--faults a,b` (default
 * all five; a fault may be joined to control-leader-crash or nats-node-crash with `+`),
 * `--control-nodes N` (run the control plane as N nodes and N etcd members), `--events jetstream`
 * and `--nats-servers 1|3` (every region's events in JetStream on its own NATS), `--runs N`
 * (default 1: each fault once; N runs every fault N times in a row). Each
 * drill's progress goes to stderr; the table to stdout, with the number of false moves (drills the
 * controller moved before their fault, IOTDR_DRILL_NOT_STEADY). Exit status 1 when a drill could
 * not run or missed a target.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DrillReport } from '../../src/drill/index.js';
import { CONTROL_LEADER_CRASH, NATS_NODE_CRASH } from '../../src/drill/index.js';
import { DRILL_FAULTS } from '../../src/faults/index.js';
import { machine } from '../registry/common.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The RTO target: within this many times the physical limit the report computes. */
const RTO_TARGET = 1.5;

function cli(): string[] {
  const compiled = join(ROOT, 'dist/cli/bin.js');
  return existsSync(compiled) ? [compiled] : ['--import', 'tsx', join(ROOT, 'src/cli/bin.ts')];
}

/** Runs one drill; resolves with its exit status and whether the fleet moved before the fault. */
function drill(args: string[]): Promise<{ code: number; falseMove: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...cli(), 'drill', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let falseMove = false;
    const relay = (d: Buffer) => {
      if (d.toString().includes('IOTDR_DRILL_NOT_STEADY')) falseMove = true;
      process.stderr.write(d);
    };
    child.stdout.on('data', relay);
    child.stderr.on('data', relay);
    child.once('exit', (code) => resolve({ code: code ?? 1, falseMove }));
  });
}

const n = (v: number | null): string => (v === null ? '—' : Math.round(v).toLocaleString('en-US'));

function row(r: DrillReport): string[] {
  const ratio = r.rtoMs === null ? null : r.rtoMs / r.limitMs;
  const physical = r.rtoMs === null || r.physicalLimitMs === null ? null : r.rtoMs / r.physicalLimitMs;
  const met =
    r.reconnected === r.devices && r.messages.lost === 0 && physical !== null && physical <= RTO_TARGET;
  const p = r.reconnectMs;
  return [
    r.fault,
    `${n(r.devices)} ${r.auth}`,
    n(r.factors.firstFailedProbeMs),
    n(r.detectionMs),
    n(r.dnsSwitchMs),
    `${n(p.p50)} / ${n(p.p95)} / ${n(p.p99)} / ${n(p.max)}`,
    n(r.rtoMs),
    n(r.ownReconnectMs),
    n(r.limitMs),
    ratio === null ? '—' : `${ratio.toFixed(2)} ×`,
    n(r.ceiling.connectsPerSecond),
    n(r.reconnectRate),
    n(r.physicalLimitMs),
    physical === null ? '—' : `${physical.toFixed(2)} ×`,
    n(r.predictedRtoMs),
    `${n(r.reconnected)} / ${n(r.devices)}`,
    `${n(r.messages.accepted)} / ${r.messages.lost} / ${r.messages.duplicated}`,
    `${r.registry.missingInSecondary} / ${r.registry.missingAfterRecovery}`,
    `${r.commands.unknownInSecondary} / ${r.commands.lost}`,
    met ? 'yes' : '**NO**',
  ];
}

const HEAD = [
  'fault',
  'fleet',
  'first failed probe',
  'decision',
  'DNS changed',
  'reconnect p50 / p95 / p99 / max',
  'RTO',
  'own reconnect',
  'limit',
  'RTO / limit',
  'ceiling (connects/s)',
  'reconnect rate (devices/s)',
  'physical limit',
  'RTO / physical limit',
  'predicted',
  'reconnected',
  'messages accepted / lost / duplicates',
  'registry missing at switch / after recovery',
  'commands unknown at switch / lost',
  `all back, 0 lost, RTO ≤ ${RTO_TARGET} × physical limit`,
];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '1000' },
      auth: { type: 'string', default: 'mtls' },
      faults: { type: 'string', default: DRILL_FAULTS.join(',') },
      runs: { type: 'string', default: '1' },
      'control-nodes': { type: 'string' },
      events: { type: 'string' },
      'nats-servers': { type: 'string' },
    },
  });
  const controlNodes = values['control-nodes'];
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
    process.stderr.write('--runs: an integer from 1 to 100\n');
    return 2;
  }
  const faults = String(values.faults).split(',');
  const unknown = faults.filter(
    (f) =>
      !f
        .split('+')
        .every(
          (part) =>
            part === CONTROL_LEADER_CRASH ||
            part === NATS_NODE_CRASH ||
            (DRILL_FAULTS as readonly string[]).includes(part),
        ),
  );
  if (unknown.length > 0) {
    process.stderr.write(`unknown fault(s): ${unknown.join(', ')}; one of ${DRILL_FAULTS.join(', ')}\n`);
    return 2;
  }
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-bench-drill-'));
  const rows: string[][] = [];
  let failed = false;
  let falseMoves = 0;
  try {
    for (const [run, fault] of Array.from({ length: runs }, (_, i) =>
      faults.map((f) => [i + 1, f] as const),
    ).flat()) {
      const json = join(dir, `${fault}-${run}.json`);
      const load = loadavg()[0]?.toFixed(2);
      process.stderr.write(
        `\n== drill ${fault} (run ${run} of ${runs}), ${values.devices} devices (${values.auth})${controlNodes === undefined ? '' : `, ${controlNodes} control nodes`}${values.events === undefined ? '' : `, events on ${values.events} (${values['nats-servers'] ?? 1} NATS server(s) per region)`}, load ${load}\n`,
      );
      const started = Date.now();
      const { code, falseMove } = await drill([
        '--devices',
        String(values.devices),
        '--auth',
        String(values.auth),
        '--fault',
        fault,
        ...(controlNodes === undefined ? [] : ['--control-nodes', String(controlNodes)]),
        ...(values.events === undefined ? [] : ['--events', values.events]),
        ...(values['nats-servers'] === undefined ? [] : ['--nats-servers', values['nats-servers']]),
        '--json',
        json,
      ]);
      if (falseMove) falseMoves++;
      process.stderr.write(
        `== ${fault}: exit ${code} after ${Math.round((Date.now() - started) / 1000)} s${falseMove ? ' (FALSE MOVE: the fleet was moved before the fault)' : ''}\n`,
      );
      const report = await readFile(json, 'utf8').then(
        (t) => JSON.parse(t) as DrillReport,
        () => undefined,
      );
      if (!report) {
        failed = true;
        rows.push([
          fault,
          `${values.devices} ${values.auth}`,
          ...HEAD.slice(2, -1).map(() => ''),
          falseMove ? '**NO**: moved before the fault' : '**NO**: did not run',
        ]);
        continue;
      }
      const r = row(report);
      if (r.at(-1) !== 'yes') failed = true;
      rows.push(r);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(machine().join('\n'));
  console.log('');
  console.log(`| ${HEAD.join(' | ')} |`);
  console.log(`|${HEAD.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log('');
  console.log(`false moves (the fleet moved before the fault): ${falseMoves} of ${rows.length} drills`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

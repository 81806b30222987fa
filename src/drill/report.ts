/** The drill's report (its JSON is documented in docs/drill.md) and its terminal table. */
import type { Ceiling } from '../fleet/index.js';

/** One switch as the drill measured it; every time is ms after the fault (or the failback request). */
export interface SwitchMeasure {
  from: string;
  to: string;
  /** Devices that reconnected to `to` and published through it. */
  reconnected: number;
  /** Of those, devices whose connection to `to` resumed their TLS session (no full handshake). */
  resumed: number;
  /** Fault → every device publishing through `to`; null when some never did. */
  rtoMs: number | null;
  /** Fault → the controller's decision. */
  detectionMs: number | null;
  /** Fault → DNS answering `to`. */
  dnsSwitchMs: number | null;
  factors: {
    firstFailedProbeMs: number | null;
    thresholdCrossedMs: number | null;
    decidedMs: number | null;
    dnsUpdatedMs: number | null;
    noticesPublishedMs: number | null;
    disconnectsRequestedMs: number | null;
  };
  /** Fault → each device connected to `to`. */
  reconnectMs: { p50: number | null; p95: number | null; p99: number | null; max: number | null };
}

/** The way back, measured like the switch; what was made in the secondary must be home after it. */
export interface FailbackMeasure extends SwitchMeasure {
  registry: { changesBeforeFailback: number; missingInPrimary: number };
  commands: { issuedBeforeFailback: number; lost: number };
}

export interface DrillReport extends SwitchMeasure {
  fault: string;
  devices: number;
  auth: 'mtls' | 'token';
  /** The same devices reconnecting with no failover (all disconnected, DNS unchanged), to their first PUBACK. */
  ownReconnectMs: number;
  /**
   * interval × failureThreshold + ownReconnectMs: the best a DNS-based switch can do with this fleet;
   * with the control leader killed, the election (lease TTL + poll) when it is longer than the threshold.
   */
  limitMs: number;
  /** What the secondary accepts from minimal clients (TLS, CONNECT, CONNACK), measured in this run. */
  ceiling: Ceiling;
  /** Devices per second from the decision to the last device back on the secondary; null when some never came. */
  reconnectRate: number | null;
  /** interval × failureThreshold (or the election, as in limitMs) + devices ÷ ceiling.connectsPerSecond: the best this machine allows. */
  physicalLimitMs: number | null;
  /**
   * interval × failureThreshold + timeout + TTL, from the configuration; with the control leader
   * killed too, the larger of that detection and the election (lease TTL + a poll), plus the TTL.
   */
  predictedRtoMs: number;
  /** With `control-leader-crash`: the leading control node killed with the fault, and the node that led after. */
  controlLeader?: { killed: string; next: string | null; leaseTtlMs: number };
  /** With `nats-node-crash`: the NATS server of the secondary killed with the fault, and whether it led the region's stream. */
  natsNode?: { region: string; server: string; ledStream: boolean };
  messages: {
    accepted: number;
    delivered: number;
    lost: number;
    duplicated: number;
    devicesWithGaps: number;
  };
  /** Changes made in the primary just before the fault: missing in the secondary at the switch, and after the primary's recovery. */
  registry: { changesBeforeFault: number; missingInSecondary: number; missingAfterRecovery: number };
  /** Commands sent just before the fault: unknown to the secondary at the switch; lost = never answered. */
  commands: { issuedBeforeFault: number; unknownInSecondary: number; lost: number };
  config: {
    intervalMs: number;
    timeoutMs: number;
    failureThreshold: number;
    ttlSeconds: number;
    disconnectOnFailover: string;
  };
  failback?: FailbackMeasure;
}

/** Nearest-rank percentile of sorted values; null for none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? null;
}

/** Whether the drill passed: every device back, nothing accepted lost, nothing missing. */
export function passed(report: DrillReport): boolean {
  const f = report.failback;
  const back =
    report.reconnected === report.devices &&
    (f === undefined ||
      (f.reconnected === report.devices && f.registry.missingInPrimary === 0 && f.commands.lost === 0));
  return (
    back &&
    report.messages.lost === 0 &&
    report.messages.devicesWithGaps === 0 &&
    report.registry.missingAfterRecovery === 0 &&
    report.commands.lost === 0
  );
}

const ms = (v: number | null) => (v === null ? '—' : `${v.toLocaleString('en-US')} ms`);

function switchRows(label: string, s: SwitchMeasure): string[][] {
  return [
    [`${label}`, `${s.from} → ${s.to}`],
    ['  first failed probe', ms(s.factors.firstFailedProbeMs)],
    ['  threshold crossed', ms(s.factors.thresholdCrossedMs)],
    ['  decision', ms(s.factors.decidedMs)],
    ['  DNS answer changed', ms(s.factors.dnsUpdatedMs)],
    ['  notices published', ms(s.factors.noticesPublishedMs)],
    ['  disconnects requested', ms(s.factors.disconnectsRequestedMs)],
    [
      '  device reconnects',
      `p50 ${ms(s.reconnectMs.p50)}, p95 ${ms(s.reconnectMs.p95)}, p99 ${ms(s.reconnectMs.p99)}, max ${ms(s.reconnectMs.max)}`,
    ],
    ['  RTO (every device publishing)', ms(s.rtoMs)],
    ['  TLS sessions resumed', `${s.resumed} of ${s.reconnected} reconnected`],
  ];
}

/** The report as aligned lines for the terminal. */
export function renderReport(report: DrillReport): string[] {
  const rows: string[][] = [
    ['fault', `${report.fault} (${report.devices} devices, ${report.auth})`],
    ...switchRows('switch', report),
    ['  reconnected', `${report.reconnected} / ${report.devices}`],
    ...(report.controlLeader
      ? [
          [
            'control leader',
            `${report.controlLeader.killed} killed with the fault; ${report.controlLeader.next ?? 'no node'} led the switch (lease ${ms(report.controlLeader.leaseTtlMs)})`,
          ],
        ]
      : []),
    ...(report.natsNode
      ? [
          [
            'NATS server',
            `${report.natsNode.region}'s ${report.natsNode.server} killed with the fault${report.natsNode.ledStream ? ' (it led the region’s event stream)' : ''}; restarted after the switch`,
          ],
        ]
      : []),
    [
      'predicted RTO',
      `${ms(report.predictedRtoMs)} (${report.controlLeader ? 'max(interval × threshold + timeout, lease TTL + poll)' : 'interval × threshold + timeout'} + TTL)`,
    ],
    [
      'limit',
      `${ms(report.limitMs)} (${report.controlLeader ? 'max(interval × threshold, lease TTL + poll)' : 'interval × threshold'} + the fleet's own reconnect, ${ms(report.ownReconnectMs)})`,
    ],
    ['RTO / limit', report.rtoMs === null ? '—' : `${(report.rtoMs / report.limitMs).toFixed(2)} ×`],
    [
      'ceiling',
      `${report.ceiling.connectsPerSecond.toLocaleString('en-US')} connects/s (${report.ceiling.auth}, minimal clients into ${report.to}, ${report.ceiling.inFlight} at once)`,
    ],
    [
      'reconnect rate',
      report.reconnectRate === null
        ? '—'
        : `${report.reconnectRate.toLocaleString('en-US')} devices/s (decision → last device back)`,
    ],
    [
      'physical limit',
      `${ms(report.physicalLimitMs)} (${report.controlLeader ? 'max(interval × threshold, lease TTL + poll)' : 'interval × threshold'} + devices ÷ ceiling)`,
    ],
    [
      'RTO / physical limit',
      report.rtoMs === null || report.physicalLimitMs === null
        ? '—'
        : `${(report.rtoMs / report.physicalLimitMs).toFixed(2)} ×`,
    ],
    [
      'messages',
      `${report.messages.accepted} accepted, ${report.messages.delivered} delivered, ${report.messages.lost} lost, ${report.messages.duplicated} duplicates dropped`,
    ],
    [
      'registry',
      `${report.registry.changesBeforeFault} changes before the fault, ${report.registry.missingInSecondary} missing in the secondary at the switch, ${report.registry.missingAfterRecovery} after recovery`,
    ],
    [
      'commands',
      `${report.commands.issuedBeforeFault} sent before the fault, ${report.commands.unknownInSecondary} unknown to the secondary at the switch, ${report.commands.lost} lost`,
    ],
    ...(report.failback
      ? [
          ...switchRows('failback', report.failback),
          ['  reconnected', `${report.failback.reconnected} / ${report.devices}`],
          [
            '  registry',
            `${report.failback.registry.changesBeforeFailback} changes in ${report.failback.from} before it, ${report.failback.registry.missingInPrimary} missing in ${report.failback.to}`,
          ],
          [
            '  commands',
            `${report.failback.commands.issuedBeforeFailback} sent before it, ${report.failback.commands.lost} lost`,
          ],
        ]
      : []),
    ['result', passed(report) ? 'PASS' : 'FAIL'],
  ];
  const width = Math.max(...rows.map((r) => (r[0] ?? '').length));
  return rows.map(([k, v]) => `${(k ?? '').padEnd(width)}  ${v ?? ''}`);
}

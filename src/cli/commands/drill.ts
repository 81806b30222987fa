import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { IotdrError } from '../../common/index.js';
import { MAX_CONTROL_NODES } from '../../control/index.js';
import {
  CONTROL_LEADER_CRASH,
  drillConfig,
  NATS_NODE_CRASH,
  passed,
  renderReport,
  runDrill,
} from '../../drill/index.js';
import { DRILL_FAULTS, type DrillFault } from '../../faults/index.js';
import { natsStreamLeader, startDrillPlatform } from '../../processes/index.js';
import { fleetOptions, loadFor, parseCommand, usageError } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr drill [--devices N] [--fault KIND[+control-leader-crash][+nats-node-crash]] [--failback]
                   [--auth mtls|token] [--rate MSGS_PER_S] [--control-nodes N]
                   [--events jetstream [--nats-servers 1|3]] [--json FILE] [--keep] [--config FILE]

Runs a disaster-recovery drill from a fresh state directory: both regions (fault injection on),
control and analytics, a simulated fleet of N devices (default 50) publishing telemetry; then makes
the fault for real in the primary and measures every RTO factor, each device's reconnection, and
what was lost. Prints progress, then a table; --json writes the report (docs/drill.md).

faults: ${DRILL_FAULTS.join(', ')} (default broker-crash)
  broker-crash         the primary's broker closes abruptly
  region-crash         the primary region's process gets SIGKILL
  app-unhealthy        the primary's application service (its app health check) fails
  cnc-unhealthy        the primary's command-and-control listener closes
  analytics-unhealthy  analytics stops ingesting the primary
  control-leader-crash the leading control node gets SIGKILL at the same moment; joined to one
                       of the above with +, e.g. control-leader-crash+region-crash (needs control
                       nodes: --control-nodes 3 or control.nodes)
  nats-node-crash      the NATS server leading the secondary's event stream gets SIGKILL at the
                       same moment, and is restarted after the switch; joined with +, e.g.
                       nats-node-crash+region-crash (needs --events jetstream --nats-servers 3)

--auth      mtls (default) or token (turns the brokers' token listener on for the drill)
--rate      telemetry messages per second over the fleet (default one per device, at most 1000)
--failback  after the switch, fail back to the primary and measure that too
--control-nodes  run the control plane as N nodes (1 to 5) and N etcd members on this machine
--events jetstream  keep every region's events in JetStream, each region with its own NATS of
            --nats-servers 1 (default) or 3 servers on this machine (Debian's nats-server)
--keep      keep the state directory (logs, databases) and print where it is

Exit 0 when every device reconnected and nothing accepted was lost, 1 otherwise, 2 on a usage error.
The drill uses the configuration's addresses and ports: stop \`iotdr up\` first.`;

const SPEC = {
  name: 'drill',
  usage: USAGE,
  options: {
    devices: { type: 'string' },
    fault: { type: 'string' },
    failback: { type: 'boolean' },
    auth: { type: 'string' },
    rate: { type: 'string' },
    'control-nodes': { type: 'string' },
    events: { type: 'string' },
    'nats-servers': { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean' },
  },
} as const;

export const drillCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const bad = (message: string) => usageError(SPEC, io, message);
  const shared = fleetOptions(values, 50);
  if (typeof shared === 'string') return bad(shared);
  const { devices, rate, auth } = shared;
  const parts = (values.fault ?? 'broker-crash').split('+');
  const controlLeaderCrash = parts.includes(CONTROL_LEADER_CRASH);
  const natsNodeCrash = parts.includes(NATS_NODE_CRASH);
  const regionFaults = parts.filter((p) => p !== CONTROL_LEADER_CRASH && p !== NATS_NODE_CRASH);
  const fault = regionFaults[0] as DrillFault;
  if (
    regionFaults.length !== 1 ||
    parts.length !== 1 + (controlLeaderCrash ? 1 : 0) + (natsNodeCrash ? 1 : 0) ||
    !(DRILL_FAULTS as readonly string[]).includes(fault)
  )
    return bad(
      `--fault: one of ${DRILL_FAULTS.join(', ')}, alone or joined with + to ${CONTROL_LEADER_CRASH} or ${NATS_NODE_CRASH} (${CONTROL_LEADER_CRASH}+region-crash)`,
    );
  if (values.events !== undefined && values.events !== 'jetstream')
    return bad('--events: jetstream (the configuration’s own engine is used without it)');
  const natsServersText = values['nats-servers'];
  if (natsServersText !== undefined && values.events === undefined)
    return bad('--nats-servers: only with --events jetstream');
  if (natsServersText !== undefined && natsServersText !== '1' && natsServersText !== '3')
    return bad('--nats-servers: 1 or 3');
  const natsServers =
    values.events === undefined ? undefined : natsServersText === undefined ? 1 : Number(natsServersText);
  const controlNodes = values['control-nodes'] === undefined ? undefined : Number(values['control-nodes']);
  if (
    controlNodes !== undefined &&
    !(Number.isInteger(controlNodes) && controlNodes >= 1 && controlNodes <= MAX_CONTROL_NODES)
  )
    return bad(`--control-nodes: an integer from 1 to ${MAX_CONTROL_NODES}`);

  const loaded = await loadFor(io, values);
  const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-drill-'));
  io.out(
    `iotdr drill: ${values.fault ?? fault} with ${devices} devices${natsServers === undefined ? '' : ` on JetStream (${natsServers} NATS server${natsServers === 1 ? '' : 's'} per region)`}; state ${stateDir}`,
  );
  try {
    const { config, configFile, added } = await drillConfig({
      ...(loaded.source === '(defaults)' ? {} : { sourceFile: resolve(io.cwd, loaded.source) }),
      auth,
      stateDir,
      ...(controlNodes === undefined ? {} : { controlNodes }),
      ...(natsServers === undefined ? {} : { natsServers }),
    });
    for (const line of added) io.out(`  added for the drill: ${line}`);
    // Ctrl-C ends the drill and stops every process it started.
    const abort = new AbortController();
    const onSignal = () => {
      io.err('iotdr drill: interrupted; stopping the platform');
      abort.abort();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const report = await runDrill({
      startPlatform: startDrillPlatform,
      signal: abort.signal,
      config,
      ...(configFile ? { configFile } : {}),
      stateDir,
      env: io.env,
      cwd: io.cwd,
      devices,
      auth,
      fault,
      controlLeaderCrash,
      natsNodeCrash,
      streamLeader: (region) => natsStreamLeader(config, stateDir, region),
      failback: values.failback === true,
      ...(rate === undefined ? {} : { ratePerSecond: rate }),
      onProgress: (line) => io.out(line),
    });
    io.out('');
    for (const line of renderReport(report)) io.out(line);
    if (values.json !== undefined) {
      await writeFile(resolve(io.cwd, values.json), `${JSON.stringify(report, null, 2)}\n`);
      io.out(`report written to ${values.json}`);
    }
    return passed(report) ? 0 : 1;
  } catch (error) {
    if (!(error instanceof IotdrError)) throw error;
    // The code too: scripts (npm run bench:drill) tell a false move from other failures by it.
    io.err(`iotdr drill: ${error.message} (${error.code})`);
    return 1;
  } finally {
    if (values.keep) io.out(`state kept in ${stateDir}`);
    else await rm(stateDir, { recursive: true, force: true });
  }
};

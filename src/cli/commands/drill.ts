import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { IotdrError } from '../../common/index.js';
import { drillConfig, passed, renderReport, runDrill } from '../../drill/index.js';
import { DRILL_FAULTS, type DrillFault } from '../../faults/index.js';
import { startDrillPlatform } from '../../processes/index.js';
import { fleetOptions, loadFor, parseCommand, usageError } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr drill [--devices N] [--fault KIND] [--failback] [--auth mtls|token] [--rate MSGS_PER_S]
                   [--json FILE] [--keep] [--config FILE]

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

--auth      mtls (default) or token (turns the brokers' token listener on for the drill)
--rate      telemetry messages per second over the fleet (default one per device, at most 1000)
--failback  after the switch, fail back to the primary and measure that too
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
  const fault = (values.fault ?? 'broker-crash') as DrillFault;
  if (!(DRILL_FAULTS as readonly string[]).includes(fault))
    return bad(`--fault: one of ${DRILL_FAULTS.join(', ')}`);

  const loaded = await loadFor(io, values);
  const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-drill-'));
  io.out(`iotdr drill: ${fault} with ${devices} devices; state ${stateDir}`);
  try {
    const { config, configFile, added } = await drillConfig({
      ...(loaded.source === '(defaults)' ? {} : { sourceFile: resolve(io.cwd, loaded.source) }),
      auth,
      stateDir,
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

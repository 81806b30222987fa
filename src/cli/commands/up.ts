import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { parse } from 'yaml';
import { baseUrl } from '../../common/index.js';
import type { ControlNode, IotdrConfig, LoadedConfig } from '../../config/index.js';
import {
  adminTokenPath,
  analyticsUrlOf,
  apiUrlOf,
  caCertPath,
  controlNodesOf,
  controlUrlOf,
  DEFAULT_REGIONS,
  DEFAULTS_SOURCE,
  embeddedNats,
  etcdEndpointsOf,
  linkScheme,
  natsProcessName,
  natsServersOf,
  parseConfig,
} from '../../config/index.js';
import { embeddedControlPlane, MAX_CONTROL_NODES } from '../../control/index.js';
import { type Fleet, launchFleet } from '../../fleet/index.js';
import {
  checkEtcdData,
  checkNatsData,
  delayText,
  eventLine,
  type LiveInfo,
  type PlatformProcess,
  type RunningPlatform,
  roleOf,
  startPlatform,
} from '../../processes/index.js';
import { loadFor, parseCommand, usageError } from '../args.js';
import type { CliIo, Command } from '../io.js';

const USAGE = `usage: iotdr up [--fleet N] [--control-nodes N] [--events jetstream [--nats-servers 1|3]]
                [--config FILE]

Starts every region of the configuration, the control plane (checker, failover controller, DNS),
analytics with its dashboard and the configured DNS servers as child processes, waits until each
answers, writes <state>/endpoints.json and prints the endpoints; then a demo fleet of N devices
(default 20, 0 for none) publishing telemetry through the DR name, as \`iotdr fleet\` runs it.
A process that dies is reported and restarted after a delay, the others serving on (the
configuration's supervision section). Ctrl-C stops them all. Logs go to <state>/logs/.

With the configuration's control.nodes, or --control-nodes N (1 to ${MAX_CONTROL_NODES}; 3 survives the
loss of one) for a configuration without them, the control plane is that many control nodes
electing a leader through as many etcd members: --control-nodes runs nodes ctl-1… on 127.0.0.21…
(API 8080, DNS 5353) and members etcd-1… on 127.0.0.31… (2379, 2380), from
<state>/iotdr.control-nodes.yaml, the configuration with them added. etcd is Debian's
(apt-get install etcd-server). Its data (<state>/etcd/) is kept from one run to the next with the
same N, and deleted when the data is of another N. Members the configuration file lists keep
their data too, but data of another member set is refused, naming the directory to delete.

With --events jetstream, for a configuration whose events.engine is sqlite (the default), every
region's event bus is a JetStream stream in a NATS of its own: --nats-servers N (1, the default,
or 3 as one cluster) servers nats-1… on the region's address (clients 4222…, cluster 6222…),
each run as \`iotdr nats\` before the regions, with Debian's nats-server (apt-get install
nats-server). A region that lists nats keeps its servers. Their data (<state>/nats/) is kept from
one run to the next with the same N, and deleted when the data is of another N; servers the
configuration file lists keep theirs too, but data of another server set is refused, naming the
directory to delete. Both flags write one configuration, <state>/iotdr.<what they add>.yaml.`;

/** Devices of the demo fleet \`iotdr up\` runs unless told otherwise. */
export const DEMO_FLEET_DEVICES = 20;

export function endpointsDocument(
  config: IotdrConfig,
  stateDir: string,
  cwd: string,
  live: Readonly<Record<string, LiveInfo>> = {},
) {
  const rel = (p: string) => {
    const r = relative(cwd, p);
    return r.startsWith('..') ? p : r;
  };
  const nodes = controlNodesOf(config);
  const firstNode = nodes[0] as ControlNode;
  return {
    zone: config.zone,
    names: { mqtt: `${config.names.mqtt}.${config.zone}`, api: `${config.names.api}.${config.zone}` },
    // The first control node's name server (with control nodes, each has its own).
    dns: { host: firstNode.dns.address, port: firstNode.dns.port },
    ...(config.dns.servers.length > 0
      ? {
          dnsServers: config.dns.servers.map((d) => ({
            name: `${d.name}.${config.zone}`,
            host: d.address,
            port: d.port,
            health: `${baseUrl(d.address, d.httpPort, linkScheme(config))}/health`,
          })),
        }
      : {}),
    // The first node's, as before there were several.
    control: controlUrlOf(config),
    controlNodes: nodes.map((n) => ({
      name: n.name,
      url: n.url,
      dns: { host: n.dns.address, port: n.dns.port },
    })),
    ...(config.control.nodes.length > 0 ? { etcd: etcdEndpointsOf(config) } : {}),
    analytics: analyticsUrlOf(config),
    regions: Object.fromEntries(
      config.regions.map((r) => [
        r.name,
        {
          api: apiUrlOf(config, r),
          mqtt: live[r.name]?.mqtt ?? baseUrl(r.address, r.mqtt.port, 'mqtts'),
          cnc: live[r.name]?.cnc ?? baseUrl(r.address, r.cnc.port, r.cnc.tls ? 'https' : 'http'),
          ...(config.broker.tokenAuth
            ? { mqttToken: live[r.name]?.mqttToken ?? baseUrl(r.address, r.mqtt.tokenPort, 'mqtts') }
            : {}),
          ...(config.events.engine === 'jetstream' ? { nats: natsServersOf(config, r) } : {}),
          role: roleOf(config, r),
        },
      ]),
    ),
    caCert: rel(caCertPath(stateDir)),
    adminToken: rel(adminTokenPath(stateDir)),
  };
}

const SPEC = {
  name: 'up',
  usage: USAGE,
  options: {
    fleet: { type: 'string' },
    'control-nodes': { type: 'string' },
    events: { type: 'string' },
    'nats-servers': { type: 'string' },
  },
} as const;

/** Servers of each region's NATS that `--nats-servers` takes: one, or a cluster of three. */
const NATS_SERVER_COUNTS = [1, 3] as const;

/** What `--control-nodes` and `--events` add to the configuration. */
interface RunAdditions {
  /** Control nodes and etcd members of the embedded control plane. */
  controlNodes?: number;
  /** Each region's event bus in JetStream, with this many NATS servers. */
  natsServers?: number;
}

type Raw = Record<string, unknown>;

/** The embedded control plane as the configuration's control nodes and etcd members. */
function addControlNodes(raw: Raw, count: number): Raw {
  const control = (raw.control ?? {}) as Raw;
  const plane = embeddedControlPlane(count);
  return {
    ...raw,
    control: {
      ...control,
      nodes: plane.nodes,
      etcd: { ...((control.etcd ?? {}) as Raw), members: plane.etcd.members },
    },
  };
}

/** The regions of the file (or the defaults) that list no NATS: those `--events jetstream` gives one. */
function regionsWithoutNats(raw: Raw): string[] {
  const regions: Raw[] = Array.isArray(raw.regions) ? raw.regions : DEFAULT_REGIONS.map((r) => ({ ...r }));
  return regions.filter((r) => r.nats === undefined).map((r) => String(r.name));
}

/** events.engine jetstream, and a NATS of `count` servers for every region without one. */
function addJetStream(raw: Raw, config: IotdrConfig, count: number): Raw {
  const regions: Raw[] = Array.isArray(raw.regions) ? raw.regions : DEFAULT_REGIONS.map((r) => ({ ...r }));
  return {
    ...raw,
    events: { ...((raw.events ?? {}) as Raw), engine: 'jetstream' },
    // The parsed regions are the file's, in its order.
    regions: regions.map((region, i) => ({
      ...region,
      nats: region.nats ?? embeddedNats(config.regions[i] ?? { address: String(region.address) }, count),
    })),
  };
}

/**
 * The configuration of a run with `--control-nodes N` or `--events jetstream`: the file's own (or
 * the defaults) with what they add, written to the state directory for the children to read, as
 * `iotdr.control-nodes.yaml`, `iotdr.events.yaml` or, with both, `iotdr.control-nodes.events.yaml`.
 */
async function withAdditions(
  loaded: LoadedConfig,
  add: RunAdditions,
): Promise<{ config: IotdrConfig; file: string; embeddedNats: string[] }> {
  let yaml: Raw =
    loaded.source === DEFAULTS_SOURCE ? {} : (parse(await readFile(loaded.source, 'utf8')) ?? {});
  const parts: string[] = [];
  const embeddedNats = add.natsServers === undefined ? [] : regionsWithoutNats(yaml);
  if (add.controlNodes !== undefined) {
    yaml = addControlNodes(yaml, add.controlNodes);
    parts.push('control-nodes');
  }
  if (add.natsServers !== undefined) {
    yaml = addJetStream(yaml, loaded.config, add.natsServers);
    parts.push('events');
  }
  const config = parseConfig(yaml);
  const file = join(loaded.stateDir, `iotdr.${parts.join('.')}.yaml`);
  // JSON is YAML.
  await writeFile(file, `${JSON.stringify(yaml, null, 2)}\n`, { mode: 0o600 });
  return { config, file, embeddedNats };
}

/** The flags' additions, or the usage error they make. */
function additionsOf(
  values: { 'control-nodes'?: string; events?: string; 'nats-servers'?: string },
  loaded: LoadedConfig,
): RunAdditions | string {
  const add: RunAdditions = {};
  if (values['control-nodes'] !== undefined) {
    if (loaded.config.control.nodes.length > 0)
      return `--control-nodes: ${loaded.source} lists control.nodes already (${loaded.config.control.nodes.map((n) => n.name).join(', ')}); run without --control-nodes to start those`;
    add.controlNodes = Number(values['control-nodes']);
  }
  if (values.events !== undefined) {
    if (loaded.config.events.engine === 'jetstream')
      return `--events: ${loaded.source} sets events.engine jetstream already; run without --events to start its NATS`;
    add.natsServers = values['nats-servers'] === undefined ? 1 : Number(values['nats-servers']);
  }
  return add;
}

export const upCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const fleetSize = values.fleet === undefined ? DEMO_FLEET_DEVICES : Number(values.fleet);
  if (!Number.isInteger(fleetSize) || fleetSize < 0 || fleetSize > 10_000) {
    return usageError(SPEC, io, '--fleet: an integer from 0 to 10000');
  }
  const controlNodes = values['control-nodes'] === undefined ? undefined : Number(values['control-nodes']);
  if (
    controlNodes !== undefined &&
    (!Number.isInteger(controlNodes) || controlNodes < 1 || controlNodes > MAX_CONTROL_NODES)
  ) {
    return usageError(SPEC, io, `--control-nodes: an integer from 1 to ${MAX_CONTROL_NODES}`);
  }
  if (values.events !== undefined && values.events !== 'jetstream')
    return usageError(SPEC, io, `--events: jetstream (the configuration's own engine is used without it)`);
  const natsServers = values['nats-servers'];
  if (natsServers !== undefined && values.events === undefined)
    return usageError(SPEC, io, '--nats-servers: only with --events jetstream');
  if (natsServers !== undefined && !NATS_SERVER_COUNTS.some((n) => String(n) === natsServers))
    return usageError(SPEC, io, `--nats-servers: ${NATS_SERVER_COUNTS.join(' or ')}`);
  const loaded = await loadFor(io, values);
  const { stateDir } = loaded;
  let config = loaded.config;
  let configFile = loaded.source === DEFAULTS_SOURCE ? undefined : loaded.source;
  const add = additionsOf(values, loaded);
  if (typeof add === 'string') return usageError(SPEC, io, add);
  const generated = add.controlNodes !== undefined || add.natsServers !== undefined;
  let embeddedNats: string[] = [];
  if (generated) {
    const run = await withAdditions(loaded, add);
    config = run.config;
    configFile = run.file;
    embeddedNats = run.embeddedNats;
  }
  const what = [
    ...(add.controlNodes === undefined ? [] : [`${add.controlNodes} control nodes`]),
    ...(add.natsServers === undefined
      ? []
      : [`JetStream on ${add.natsServers} NATS server${add.natsServers === 1 ? '' : 's'} per region`]),
  ];
  const using = generated ? ` with ${what.join(' and ')} (${configFile})` : '';
  io.out(`iotdr up: configuration ${loaded.source}${using}, state ${stateDir}`);
  // etcd keeps its data between runs, in the cluster it was made in. The embedded members are this
  // command's own: a run with another N starts them afresh. Configured ones are refused.
  const replaced = await checkEtcdData(config, stateDir, controlNodes === undefined ? 'refuse' : 'remove');
  const [earlier] = replaced;
  if (earlier !== undefined) {
    const members = earlier.recorded.members.map((m) => m.slice(0, m.indexOf('='))).join(', ');
    io.out(
      `iotdr up: ${dirname(earlier.dataDir)} held the etcd data of another run (members ${members}): deleted, the etcd members start afresh`,
    );
  }
  // So does NATS, in the server set it was made in: the servers --events jetstream adds are this
  // command's own, started afresh in a region whose set changed. Configured ones are refused.
  for (const earlierNats of await checkNatsData(config, stateDir, embeddedNats)) {
    const { recorded, region, storeDir } = earlierNats;
    const servers = recorded.routes.length === 0 ? 'one server' : `${recorded.routes.length} servers`;
    io.out(
      `iotdr up: ${dirname(storeDir)} held the NATS data of another run (${servers}): deleted, the NATS of ${region} starts afresh`,
    );
  }
  // Aborted by Ctrl-C: the children get it too, and their exits are then no crash.
  const shutdown = new AbortController();
  let started = false;
  let platform: RunningPlatform | undefined;
  let everyProcessDown: () => void = () => {};
  const down = new Promise<'down'>((resolve) => {
    everyProcessDown = () => resolve('down');
  });
  try {
    platform = await startPlatform({
      config,
      stateDir,
      ...(configFile === undefined ? {} : { configFile }),
      env: io.env,
      cwd: io.cwd,
      signal: shutdown.signal,
      // After the start, a restart says so in its own line (onEvent).
      onReady: (p) => {
        if (!started) io.out(readyLine(config, p));
      },
      onEvent: (event, p) => {
        if (event.type === 'restarted') io.out(`iotdr up: ${eventLine(event, p)}`);
        else io.err(`iotdr up: ${eventLine(event, p)}`);
        // With nothing left running and nothing to restart, there is nothing to wait for.
        const running = [...(platform?.processes.values() ?? [])].some(
          (q) => q.child.exitCode === null && q.child.signalCode === null,
        );
        if (event.type === 'exited' && event.restartInMs === null && platform && !running) everyProcessDown();
      },
    });
  } catch (error) {
    io.err(`iotdr up: ${(error as Error).message}`);
    return 1;
  }
  started = true;
  const live = Object.fromEntries(
    config.regions.map((r) => [r.name, platform.processes.get(r.name)?.live ?? {}]),
  );
  const logDir = platform.logDir;
  const endpoints = endpointsDocument(config, stateDir, io.cwd, live);
  const endpointsPath = join(stateDir, 'endpoints.json');
  await writeFile(endpointsPath, `${JSON.stringify(endpoints, null, 2)}\n`);
  io.out('');
  io.out(`  DR names      ${endpoints.names.mqtt}, ${endpoints.names.api} (zone ${endpoints.zone})`);
  io.out(`  try           dig @${endpoints.dns.host} -p ${endpoints.dns.port} ${endpoints.names.mqtt}`);
  io.out(`  CA            ${endpoints.caCert}`);
  io.out(`  admin token   ${endpoints.adminToken}`);
  io.out(`  endpoints     ${endpointsPath}`);
  // The other commands find the control nodes and NATS of this run in its configuration only.
  if (generated) io.out(`  config        ${configFile}   (--config for iotdr status, failover, …)`);
  for (const [name, region] of Object.entries(endpoints.regions))
    if (region.nats !== undefined) io.out(`  NATS ${name.padEnd(8)} ${region.nats.join(', ')}`);
  io.out(`  logs          ${logDir}`);
  io.out('');
  const fleet = fleetSize > 0 ? await startDemoFleet(io, config, stateDir, fleetSize) : undefined;
  const [primary, secondary] = [...config.regions].sort((a, b) => a.priority - b.priority);
  io.out(`  dashboard     ${endpoints.analytics}/`);
  io.out(
    '                (sign in with the admin token; the browser trusts the page once it trusts the CA above)',
  );
  if (secondary) {
    io.out(
      `  failover      iotdr failover --to ${secondary.name} --reason demo   (or the dashboard's button; iotdr failback returns)`,
    );
  }
  const primaryProcess = primary && platform.processes.get(primary.name);
  if (secondary && primaryProcess) {
    const back =
      config.supervision.restart === 'never'
        ? `${primary.name} stays down: supervision.restart is never`
        : `${primary.name} is restarted in ${delayText(config.supervision.restartDelayMs)}, then ${
            config.failover.failback === 'auto' ? 'the fleet returns once it is stable' : 'iotdr failback'
          }`;
    io.out(
      `  region crash  kill -9 ${primaryProcess.child.pid}   (the fleet moves to ${secondary.name}; ${back})`,
    );
  }
  io.out('  more devices  iotdr fleet --devices 100');
  io.out('  a real fault  iotdr drill --fault broker-crash   (measures RTO and RPO; stop iotdr up first)');
  io.out('');
  io.out('iotdr is up; Ctrl-C stops it');

  const signalled = new Promise<'signalled'>((resolve) => {
    const stop = () => {
      shutdown.abort();
      resolve('signalled');
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const reason = await Promise.race([signalled, down]);
  if (reason === 'down') io.err('iotdr up: every process has exited and none is to be restarted; stopping');
  else io.out('iotdr up: stopping');
  await fleet?.stop();
  await platform.stop();
  io.out('iotdr up: stopped');
  return reason === 'down' ? 1 : 0;
};

/** What `iotdr up` prints for a process once it answers. */
function readyLine(config: IotdrConfig, p: PlatformProcess): string {
  const region = config.regions.find((r) => r.name === p.name);
  if (region) {
    const mqtt = p.live.mqtt ?? baseUrl(region.address, region.mqtt.port, 'mqtts');
    return `  region ${region.name.padEnd(12)} ${roleOf(config, region).padEnd(10)} ${p.url}  ${mqtt}`;
  }
  if (p.name === 'control')
    return `  control                         ${p.url}  dns ${config.dns.address}:${config.dns.port}`;
  const node = controlNodesOf(config).find((n) => p.name === `control-${n.name}`);
  if (node) return `  control ${node.name.padEnd(23)} ${p.url}  dns ${node.dns.address}:${node.dns.port}`;
  const member = config.control.etcd.members.find((m) => p.name === `etcd-${m.name}`);
  if (member) return `  etcd ${member.name.padEnd(26)} ${p.url}`;
  for (const r of config.regions)
    for (const s of r.nats?.servers ?? [])
      if (p.name === natsProcessName(r.name, s.name))
        return `  nats ${`${r.name}/${s.name}`.padEnd(26)} ${p.url}`;
  if (p.name === 'analytics') return `  analytics                       ${p.url}  (dashboard)`;
  const server = config.dns.servers.find((d) => `dns-${d.name}` === p.name);
  return `  dns ${(server?.name ?? p.name).padEnd(27)} ${p.url}  dns ${server?.address}:${server?.port}`;
}

/**
 * The demo fleet, onboarded through command and control once (credentials kept in the state
 * directory) and run in worker threads. A fleet that cannot start is reported; the platform runs on.
 */
async function startDemoFleet(
  io: CliIo,
  config: IotdrConfig,
  stateDir: string,
  devices: number,
): Promise<Fleet | undefined> {
  // Devices follow a name, not a port: every region must listen on the same fixed MQTT port.
  const ports = new Set(config.regions.map((r) => r.mqtt.port));
  if (ports.has(0) || ports.size > 1) {
    io.out('  demo fleet    none: the regions do not share one fixed MQTT port (mqtt.port)');
    return undefined;
  }
  try {
    const { fleet, region } = await launchFleet({
      config,
      stateDir,
      count: devices,
      prefix: 'demo',
      auth: 'mtls',
      onError: (message) => io.err(`iotdr up: demo fleet: ${message}`),
    });
    io.out(
      `  demo fleet    ${devices} devices (demo-00001…) publishing telemetry through ${config.names.mqtt}.${config.zone}, onboarded in ${region.name}`,
    );
    return fleet;
  } catch (error) {
    io.err(`iotdr up: the demo fleet did not start: ${(error as Error).message}`);
    return undefined;
  }
}

import { IotdrError } from '../common/index.js';
import { configCommand } from './commands/config.js';
import { type CliIo, type Command, processIo } from './io.js';

interface CommandEntry {
  run: () => Promise<Command>;
  summary: string;
}

const commands: Record<string, CommandEntry> = {
  up: {
    run: async () => (await import('./commands/up.js')).upCommand,
    summary: 'run every region of the configuration',
  },
  region: {
    run: async () => (await import('./commands/region.js')).regionCommand,
    summary: 'run one region',
  },
  'broker-node': {
    run: async () => (await import('./commands/broker-node.js')).brokerNodeCommand,
    summary: "run one more broker of a region on this host, sharing the region's Redis",
  },
  control: {
    run: async () => (await import('./commands/control.js')).controlCommand,
    summary: 'run the checker, the failover controller and the DNS',
  },
  etcd: {
    run: async () => (await import('./commands/etcd.js')).etcdCommand,
    summary: 'run one member of the etcd cluster the control nodes elect their leader through',
  },
  nats: {
    run: async () => (await import('./commands/nats.js')).natsCommand,
    summary: "run one server of a region's NATS, which holds the region's event stream (JetStream)",
  },
  checker: {
    run: async () => (await import('./commands/checker.js')).checkerCommand,
    summary: 'probe every region from here and report to the controller',
  },
  analytics: {
    run: async () => (await import('./commands/analytics.js')).analyticsCommand,
    summary: "ingest every region's bus, de-duplicate, serve the query API and the dashboard",
  },
  devices: {
    run: async () => (await import('./commands/devices.js')).devicesCommand,
    summary: 'onboard (one or a list, with progress), suspend, resume, decommission, command devices',
  },
  fleet: {
    run: async () => (await import('./commands/fleet.js')).fleetCommand,
    summary: 'run a simulated fleet on the running platform (onboarded in bulk, worker threads)',
  },
  drill: {
    run: async () => (await import('./commands/drill.js')).drillCommand,
    summary: 'inject a real fault with a simulated fleet; measure RTO and RPO',
  },
  dns: {
    run: async () => (await import('./commands/dns.js')).dnsCommand,
    summary: 'run one more DNS server of the zone, following the controller',
  },
  status: {
    run: async () => (await import('./commands/status.js')).statusCommand,
    summary: 'control nodes and the leader, regions, health, active region, epoch, etcd, last switch',
  },
  failover: {
    run: async () => (await import('./commands/failover.js')).failoverCommand,
    summary: 'move the fleet to a region now (routing control)',
  },
  failback: {
    run: async () => (await import('./commands/failover.js')).failbackCommand,
    summary: 'clear routing controls, back to the best healthy region',
  },
  config: { run: async () => configCommand, summary: 'check or print the configuration' },
  token: {
    run: async () => (await import('./commands/token.js')).tokenCommand,
    summary: 'create, list or revoke API tokens',
  },
  replication: {
    run: async () => (await import('./commands/replication.js')).replicationCommand,
    summary: 'link status, compare two regions, dead letters',
  },
};

function usage(io: CliIo): void {
  io.out('usage: iotdr <command> [options]');
  io.out('');
  io.out('commands:');
  for (const [name, entry] of Object.entries(commands)) io.out(`  ${name.padEnd(14)}${entry.summary}`);
  io.out('');
  io.out("run 'iotdr <command> --help' for a command's options");
}

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    usage(io);
    return name === undefined ? 2 : 0;
  }
  const entry = commands[name];
  if (!entry) {
    io.err(`iotdr: unknown command '${name}'`);
    usage(io);
    return 2;
  }
  try {
    const command = await entry.run();
    return await command(rest, io);
  } catch (error) {
    if (error instanceof IotdrError) {
      io.err(`iotdr ${name}: ${error.message} (${error.code})`);
      for (const issue of error.issues) io.err(`  ${issue.path}: ${issue.message}`);
      return 1;
    }
    throw error;
  }
}

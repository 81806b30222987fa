import { startEtcdMember } from '../../processes/index.js';
import { loadFor, parseCommand, usageError } from '../args.js';
import { exitWithServer } from '../child-exit.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr etcd --member NAME [--config FILE]

Runs the member NAME of control.etcd.members, the etcd cluster the control nodes elect their
leader through, with Debian's etcd (apt-get install etcd-server): its data in <state>/etcd/NAME,
the cluster as the configuration lists it. Data made for another member set (other members, peer
addresses or ports, links mode, zone or etcd prefix) is refused, naming the directory to delete.
Over mutual-TLS links the member shows its site certificate (made or renewed from the platform's
CA) on both ports and accepts only certificates of that CA; on plain-loopback links both are plain
HTTP. etcd's log goes to stderr. SIGINT and SIGTERM stop etcd cleanly; the command exits with
etcd's code.`;

const SPEC = { name: 'etcd', usage: USAGE, options: { member: { type: 'string' } } } as const;

export const etcdCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.member === undefined) return usageError(SPEC, io, '--member NAME is required');
  const loaded = await loadFor(io, values);
  const member = await startEtcdMember({
    config: loaded.config,
    stateDir: loaded.stateDir,
    member: values.member,
  });
  io.err(
    `iotdr etcd: member ${member.name} at ${member.url} (etcd pid ${member.pid}), data ${member.dataDir}`,
  );
  // etcd stops on the signal itself.
  return exitWithServer(io, 'iotdr etcd', 'etcd', member);
};

import { constants } from 'node:os';
import { startEtcdMember } from '../../processes/index.js';
import { loadFor, parseCommand, usageError } from '../args.js';
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
  // etcd stops on the signal itself; this process waits for it, so it never outlives its data.
  let asked: NodeJS.Signals | undefined;
  const forward = (signal: NodeJS.Signals) => {
    asked = signal;
    member.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const { code, signal } = await member.exited;
    if (signal === null) return code ?? 1;
    // Stopped as asked: a clean stop. Any other signal is reported the shell's way.
    if (signal === asked) return 0;
    io.err(`iotdr etcd: etcd ended by ${signal}`);
    return 128 + (constants.signals[signal] ?? 0);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
};

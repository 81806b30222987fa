import { startControl } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr control [--node NAME] [--config FILE]

Runs the control plane: a checker probing every region's /health, the failover controller
(thresholds, checker quorum, routing controls, fencing epoch, decision log), and the built-in
authoritative DNS for the fleet's zone, which answers the active region's address. Stops cleanly
on SIGINT or SIGTERM.

With control.nodes, runs the node NAME: the nodes elect a leader through the etcd members of
control.etcd, only the leader decides, and every node serves the committed decision.`;

const SPEC = {
  name: 'control',
  usage: USAGE,
  options: { node: { type: 'string' } },
} as const;

export const controlCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const loaded = await loadFor(io, values);
  const control = await startControl({
    config: loaded.config,
    stateDir: loaded.stateDir,
    ...(values.node === undefined ? {} : { node: values.node }),
  });
  await untilSignalled();
  await control.stop();
  return 0;
};

import { startRegion } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled, usageError } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr region --name REGION [--enable-faults] [--config FILE]

Runs one region: its device registry and change log, replication from every peer, the MQTT broker,
shadows, rules, event bus, command and control, health and HTTP API, on the addresses and ports
the configuration gives it. With --enable-faults it accepts fault injection (POST /v1/faults/...,
admin token), as iotdr drill needs; never enable it in production. Stops cleanly on SIGINT or
SIGTERM.`;

const SPEC = {
  name: 'region',
  usage: USAGE,
  options: { name: { type: 'string' }, 'enable-faults': { type: 'boolean' } },
} as const;

export const regionCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (!values.name) {
    return usageError(SPEC, io, '--name is required');
  }
  const loaded = await loadFor(io, values);
  const region = await startRegion({
    config: loaded.config,
    stateDir: loaded.stateDir,
    name: values.name,
    faults: values['enable-faults'] === true,
  });
  await untilSignalled();
  await region.stop();
  return 0;
};

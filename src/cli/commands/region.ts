import { startRegion } from '../../region.js';
import { loadFor, parseCommand, untilSignalled } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr region --name REGION [--config FILE]

Runs one region: its device registry and change log, replication from every peer, the MQTT broker,
shadows, rules, event bus, health and HTTP API, on the addresses and ports the configuration
gives it. Stops cleanly on SIGINT or SIGTERM.`;

export const regionCommand: Command = async (argv, io) => {
  const values = parseCommand('region', USAGE, argv, { name: { type: 'string' } }, io);
  if (typeof values === 'number') return values;
  if (typeof values.name !== 'string' || values.name === '') {
    io.err('iotdr region: --name is required');
    io.err(USAGE);
    return 2;
  }
  const loaded = await loadFor(io, values);
  const region = await startRegion({ config: loaded.config, stateDir: loaded.stateDir, name: values.name });
  await untilSignalled();
  await region.stop();
  return 0;
};

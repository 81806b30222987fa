import { createLogger } from '../../common/index.js';
import { regionByName } from '../../config/index.js';
import { brokerListenOf, startBrokerNode } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled, usageError } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr broker-node --region REGION [--address ADDRESS] [--config FILE]

Runs one more broker of a region, on this host: the region's MQTT listeners on ADDRESS (default
the region's address) and its ports, sharing the region's Redis (regions[].redis) with the
region's own broker, which stays its hub (registry, shadows, rules, health). Put several behind
the region's address (a load balancer passing TCP through) to grow past one host. It needs the
region's state directory copied from the region's host (the CA in pki/, secrets/tls-tickets.key)
and the region's registry store: PostgreSQL on another host, or the same SQLite file on the same
host. Stops cleanly on SIGINT or SIGTERM.`;

const SPEC = {
  name: 'broker-node',
  usage: USAGE,
  options: { region: { type: 'string' }, address: { type: 'string' } },
} as const;

export const brokerNodeCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (!values.region) {
    return usageError(SPEC, io, '--region is required');
  }
  const loaded = await loadFor(io, values);
  const region = regionByName(loaded.config, values.region);
  if (region.redis === undefined) {
    io.err(
      `iotdr broker-node: region ${region.name} has no redis in the configuration; its brokers share messages and sessions through it`,
    );
    return 2;
  }
  const logger = createLogger({ level: loaded.config.logging.level, name: `broker-node:${region.name}` });
  const running = await startBrokerNode(
    {
      config: loaded.config,
      stateDir: loaded.stateDir,
      region: region.name,
      listen: brokerListenOf(region, values.address, false),
    },
    logger,
  );
  io.out(
    `broker node ${running.node.id} of ${region.name} on ${running.addresses.tls.host}:${running.addresses.tls.port}`,
  );
  await untilSignalled();
  await running.stop();
  return 0;
};

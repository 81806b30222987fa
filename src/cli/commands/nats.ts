import { startNatsServer } from '../../processes/index.js';
import { loadFor, parseCommand, usageError } from '../args.js';
import { exitWithServer } from '../child-exit.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr nats --region R --server NAME [--config FILE]

Runs the server NAME of region R's NATS (regions[].nats.servers), which holds the region's event
stream when events.engine is jetstream, with Debian's nats-server (apt-get install nats-server):
its configuration written to <state>/nats/R/NAME.conf, JetStream's store in <state>/nats/R/NAME/,
and with several servers listed one cluster of them (iotdr-R), whose routes authenticate with the
region's secret <state>/secrets/nats-R.route (made by the first server started here; a host
without the CA's key is given a copy). A store made for another server set (other servers,
addresses or cluster ports) is refused, naming the directory to delete. Over mutual-TLS links the
server shows its site certificate (made or renewed from the platform's CA) and lets in only the
region (which writes) and analytics (which reads, but neither publishes events nor changes the
stream); on plain-loopback links the client port is plain, without authorization. nats-server's
log goes to stderr. SIGINT and SIGTERM stop it cleanly (both reach it as SIGINT); the command
exits with nats-server's code.`;

const SPEC = {
  name: 'nats',
  usage: USAGE,
  options: { region: { type: 'string' }, server: { type: 'string' } },
} as const;

export const natsCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.region === undefined) return usageError(SPEC, io, '--region R is required');
  if (values.server === undefined) return usageError(SPEC, io, '--server NAME is required');
  const loaded = await loadFor(io, values);
  const server = await startNatsServer({
    config: loaded.config,
    stateDir: loaded.stateDir,
    region: values.region,
    server: values.server,
  });
  io.err(
    `iotdr nats: server ${server.name} of ${server.region} at ${server.url} (nats-server pid ${server.pid}), store ${server.storeDir}`,
  );
  // Both signals reach it as SIGINT: on SIGTERM nats-server 2.9 stops as cleanly but exits with 1.
  return exitWithServer(io, 'iotdr nats', 'nats-server', server, 'SIGINT');
};

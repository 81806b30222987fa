import { packageVersion } from '../../common/index.js';
import { startNameServer } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr dns --name NAME [--control URL] [--token-file FILE] [--config FILE]

Runs one more authoritative DNS server for the fleet's zone, the dns.servers entry NAME (one per
region, say): it answers the same names as the DNS of iotdr control, follows every control node
with a long poll each (with --control, only the node at URL), serves a decision as soon as one node
answers it with a higher epoch than the served one, keeps the last decision in
<state>/dns/NAME.decision.json, and keeps serving it when no node answers, also after a restart.
Its /health says whether a node confirms what it serves, and how each node answers. Over mutual
TLS (links.mode, the default) it proves itself with its site certificate; on plain loopback links
it sends the token (role reader) read from FILE, default <state>/secrets/dns.token (made by iotdr
control). Stops on SIGINT or SIGTERM.`;

const SPEC = {
  name: 'dns',
  usage: USAGE,
  options: { name: { type: 'string' }, control: { type: 'string' }, 'token-file': { type: 'string' } },
} as const;

export const dnsCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const loaded = await loadFor(io, values);
  const known = loaded.config.dns.servers.map((s) => s.name);
  if (values.name === undefined || !known.includes(values.name)) {
    io.err(
      `iotdr dns: --name must be one of dns.servers (${known.length > 0 ? known.join(', ') : 'none is configured'})`,
    );
    return 2;
  }
  const server = await startNameServer({
    config: loaded.config,
    stateDir: loaded.stateDir,
    name: values.name,
    version: await packageVersion(),
    ...(values.control === undefined ? {} : { controlUrl: values.control }),
    ...(values['token-file'] === undefined ? {} : { tokenFile: values['token-file'] }),
  });
  // The follower's timers do not hold a process open; the sockets do, and this wait.
  await untilSignalled();
  await server.stop();
  return 0;
};

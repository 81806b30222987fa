import { createLogger } from '../../common/index.js';
import { apiUrlOf, checkerTokenPath, controlNodesAt, readSecretFile } from '../../config/index.js';
import {
  Checker,
  FanOutSink,
  failoverGiveUpMs,
  HttpObservationSink,
  type ObservationSink,
} from '../../failover/index.js';
import { controlSiteOf, siteLinks } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr checker --id ID [--control URL] [--token-file FILE] [--config FILE]

Runs one checker from this vantage point: probes every region's /health every failover.intervalMs
and reports to every control node (iotdr control), so whichever node leads counts its votes; with
--control, only to the node at URL. ID must be listed in failover.checkers; a majority of them
decides. Over mutual TLS (links.mode, the default) the checker proves its ID with its site
certificate, <state>/pki/sites/checker-ID.pem, and may report for that ID only; on plain loopback
links it sends the token (role operator) read from FILE, default <state>/secrets/checker.token.
Stops on SIGINT or SIGTERM.`;

const SPEC = {
  name: 'checker',
  usage: USAGE,
  options: { id: { type: 'string' }, control: { type: 'string' }, 'token-file': { type: 'string' } },
} as const;

export const checkerCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const loaded = await loadFor(io, values);
  const { config } = loaded;
  const id = values.id;
  if (id === undefined || !config.failover.checkers.includes(id)) {
    io.err(`iotdr checker: --id must be one of failover.checkers (${config.failover.checkers.join(', ')})`);
    return 2;
  }
  const nodes = controlNodesAt(config, values.control);
  const links = await siteLinks(config, loaded.stateDir, { kind: 'checker', name: id }, { addresses: [] });
  const token =
    links.tls === undefined
      ? await readSecretFile(values['token-file'] ?? checkerTokenPath(loaded.stateDir))
      : undefined;
  // One sink per node, each checking that node's site certificate; a node that does not take the
  // observations does not hold back the others.
  const sinks = nodes.map((node) => {
    const agent = links.agentFor(controlSiteOf(node.name));
    return {
      name: node.name,
      sink: new HttpObservationSink({
        controlUrl: node.url,
        ...(agent === undefined ? { token: token ?? '' } : { agent }),
        timeoutMs: config.failover.timeoutMs,
      }),
    };
  });
  const [only] = sinks;
  const sink: ObservationSink = sinks.length === 1 && only ? only.sink : new FanOutSink(sinks);
  const logger = createLogger({ level: config.logging.level, name: `checker:${id}` });
  const checker = new Checker({
    id,
    regions: config.regions.map((r) => {
      const regionAgent = links.agentFor({ kind: 'region', name: r.name });
      return {
        name: r.name,
        url: apiUrlOf(config, r),
        ...(regionAgent === undefined ? {} : { agent: regionAgent }),
      };
    }),
    sink,
    intervalMs: config.failover.intervalMs,
    timeoutMs: config.failover.timeoutMs,
    giveUpMs: failoverGiveUpMs(config.failover),
    critical: [...config.health.critical],
    onError: (error) =>
      logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'cannot report to a control node',
      ),
  });
  checker.start();
  logger.info(
    { controls: nodes.map((n) => n.url), regions: config.regions.map((r) => r.name) },
    'checker probing',
  );
  // The checker's timers do not hold a process open (they are unref'd for embedding); this does.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await untilSignalled();
  clearInterval(keepAlive);
  await checker.stop();
  links.close();
  return 0;
};

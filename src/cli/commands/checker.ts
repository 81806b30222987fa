import { createLogger } from '../../common/index.js';
import { apiUrlOf, checkerTokenPath, controlUrlOf, readSecretFile } from '../../config/index.js';
import { Checker, failoverGiveUpMs, HttpObservationSink } from '../../failover/index.js';
import { CONTROL_SITE, siteLinks } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr checker --id ID [--control URL] [--token-file FILE] [--config FILE]

Runs one checker from this vantage point: probes every region's /health every failover.intervalMs
and reports to the controller (iotdr control) at URL (default: the configured control address).
ID must be listed in failover.checkers; a majority of them decides. Over mutual TLS (links.mode,
the default) the checker proves its ID with its site certificate, <state>/pki/sites/checker-ID.pem,
and may report for that ID only; on plain loopback links it sends the token (role operator) read
from FILE, default <state>/secrets/checker.token. Stops on SIGINT or SIGTERM.`;

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
  const controlUrl = values.control ?? controlUrlOf(config);
  const links = await siteLinks(config, loaded.stateDir, { kind: 'checker', name: id }, { addresses: [] });
  const agent = links.agentFor(CONTROL_SITE);
  const credentials =
    agent === undefined
      ? { token: await readSecretFile(values['token-file'] ?? checkerTokenPath(loaded.stateDir)) }
      : { agent };
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
    sink: new HttpObservationSink({ controlUrl, ...credentials, timeoutMs: config.failover.timeoutMs }),
    intervalMs: config.failover.intervalMs,
    timeoutMs: config.failover.timeoutMs,
    giveUpMs: failoverGiveUpMs(config.failover),
    critical: [...config.health.critical],
    onError: (error) =>
      logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'cannot report to the controller',
      ),
  });
  checker.start();
  logger.info({ controlUrl, regions: config.regions.map((r) => r.name) }, 'checker probing');
  // The checker's timers do not hold a process open (they are unref'd for embedding); this does.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await untilSignalled();
  clearInterval(keepAlive);
  await checker.stop();
  links.close();
  return 0;
};

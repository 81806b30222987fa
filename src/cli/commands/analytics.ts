import { startAnalytics } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr analytics [--config FILE]

Runs analytics: follows every region's event bus from persisted offsets, de-duplicates messages
by id across regions, counts messages per region and second, tracks each device's last message
and the gaps in its sequence numbers, mirrors the controller's decision log, and serves the query
API (default http://127.0.0.10:8081). Stops cleanly on SIGINT or SIGTERM.`;

export const analyticsCommand: Command = async (argv, io) => {
  const values = parseCommand('analytics', USAGE, argv, {}, io);
  if (typeof values === 'number') return values;
  const loaded = await loadFor(io, values);
  const analytics = await startAnalytics({ config: loaded.config, stateDir: loaded.stateDir });
  await untilSignalled();
  await analytics.stop();
  return 0;
};

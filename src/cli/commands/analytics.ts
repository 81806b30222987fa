import { startAnalytics } from '../../processes/index.js';
import { loadFor, parseCommand, untilSignalled } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr analytics [--enable-faults] [--config FILE]

Runs analytics: follows every region's event bus from persisted offsets, de-duplicates messages
by id across regions, counts messages per region and second, tracks each device's last message
and the gaps in its sequence numbers, mirrors the controller's decision log, and serves the query
API (default http://127.0.0.10:8081). With --enable-faults it accepts fault injection (POST
/v1/ingest/REGION/stop, as the drill does). Stops cleanly on SIGINT or SIGTERM.`;

const SPEC = { name: 'analytics', usage: USAGE, options: { 'enable-faults': { type: 'boolean' } } } as const;

export const analyticsCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const loaded = await loadFor(io, values);
  const analytics = await startAnalytics({
    config: loaded.config,
    stateDir: loaded.stateDir,
    faults: values['enable-faults'] === true,
  });
  await untilSignalled();
  await analytics.stop();
  return 0;
};

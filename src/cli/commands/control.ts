import { parseArgs } from 'node:util';
import { loadConfig } from '../../config/index.js';
import { startControl } from '../../control.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr control [--config FILE]

Runs the control plane: a checker probing every region's /health, the failover controller
(thresholds, checker quorum, routing controls, fencing epoch, decision log), and the built-in
authoritative DNS for the fleet's zone, which answers the active region's address. Stops cleanly
on SIGINT or SIGTERM.`;

export const controlCommand: Command = async (argv, io) => {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    io.err(`iotdr control: ${(error as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const loaded = await loadConfig({
    env: io.env,
    cwd: io.cwd,
    ...(values.config === undefined ? {} : { file: values.config }),
  });
  const control = await startControl({ config: loaded.config, stateDir: loaded.stateDir });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await control.stop();
  return 0;
};

import { parseArgs } from 'node:util';
import { loadConfig } from '../../config/index.js';
import { startRegion } from '../../region.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr region --name REGION [--config FILE]

Runs one region: its device registry, change log and HTTP API, on the address and port the
configuration gives it. Stops cleanly on SIGINT or SIGTERM.`;

export const regionCommand: Command = async (argv, io) => {
  let values: { name?: string; config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    io.err(`iotdr region: ${(error as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (!values.name) {
    io.err('iotdr region: --name is required');
    io.err(USAGE);
    return 2;
  }
  const loaded = await loadConfig({
    env: io.env,
    cwd: io.cwd,
    ...(values.config === undefined ? {} : { file: values.config }),
  });
  const region = await startRegion({ config: loaded.config, stateDir: loaded.stateDir, name: values.name });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await region.stop();
  return 0;
};

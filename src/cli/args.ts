import { parseArgs } from 'node:util';
import { type LoadedConfig, loadConfig } from '../config/index.js';
import type { CliIo } from './io.js';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
export type Values = Record<string, string | boolean | undefined>;

/**
 * Parses a command's options, always with `--config FILE` and `--help`. Returns the values, or the
 * exit code when there is nothing more to do: 0 after printing the usage, 2 after a usage error.
 */
export function parseCommand(
  name: string,
  usage: string,
  argv: string[],
  options: OptionSpec,
  io: CliIo,
): Values | number {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { ...options, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
    const parsed = values as Values;
    if (parsed.help) {
      io.out(usage);
      return 0;
    }
    return parsed;
  } catch (error) {
    io.err(`iotdr ${name}: ${(error as Error).message}`);
    io.err(usage);
    return 2;
  }
}

/** The configuration named by `--config`, or the default one. */
export function loadFor(io: CliIo, values: Values): Promise<LoadedConfig> {
  const file = values.config;
  return loadConfig({ env: io.env, cwd: io.cwd, ...(typeof file === 'string' ? { file } : {}) });
}

/** Resolves on SIGINT or SIGTERM: how a long-running command waits to stop. */
export function untilSignalled(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** The fleet options `iotdr fleet` and `iotdr drill` share: `--devices`, `--rate`, `--auth`. */
export interface FleetOptionValues {
  devices: number;
  rate: number | undefined;
  auth: 'mtls' | 'token';
}

/** Validates the shared fleet options; a string is the usage error to print. */
export function fleetOptions(values: Values, defaultDevices: number): FleetOptionValues | string {
  const devices = values.devices === undefined ? defaultDevices : Number(values.devices);
  if (!Number.isInteger(devices) || devices < 1 || devices > 10_000)
    return '--devices: an integer from 1 to 10000';
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && (!Number.isFinite(rate) || rate <= 0)) return '--rate: messages per second, > 0';
  const auth = values.auth ?? 'mtls';
  if (auth !== 'mtls' && auth !== 'token') return '--auth: mtls or token';
  return { devices, rate, auth };
}

import { parseArgs } from 'node:util';
import { type LoadedConfig, loadConfig } from '../config/index.js';
import type { CliIo } from './io.js';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** The values of a command's options, typed by their spec; `--config` and `--help` always. */
export type Values<O extends OptionSpec = OptionSpec> = {
  [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string;
} & { config?: string; help?: boolean };

/** A command as its parser sees it: its name in messages, its usage, its options. */
export interface CommandSpec<O extends OptionSpec> {
  /** As messages name it: `devices` prints `iotdr devices: …`. */
  name: string;
  usage: string;
  options: O;
  /** Whether it takes arguments after its name (a subcommand, a thing name). Default false. */
  positionals?: boolean;
}

export interface Parsed<O extends OptionSpec> {
  values: Values<O>;
  positionals: string[];
}

/** The usage, a line at a time. */
export function printUsage(write: (line: string) => void, usage: string): void {
  for (const line of usage.split('\n')) write(line);
}

/** A usage error: the message and the usage on stderr; the exit code, 2. */
export function usageError(spec: { name: string; usage: string }, io: CliIo, message: string): number {
  io.err(`iotdr ${spec.name}: ${message}`);
  printUsage(io.err, spec.usage);
  return 2;
}

/**
 * Parses a command's arguments, always with `--config FILE` and `--help`. Returns the values and
 * the positionals, or the exit code when there is nothing more to do: 0 after printing the usage,
 * 2 after a usage error.
 */
export function parseCommand<O extends OptionSpec>(
  spec: CommandSpec<O>,
  argv: string[],
  io: CliIo,
): Parsed<O> | number {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...spec.options, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: spec.positionals === true,
    });
  } catch (error) {
    return usageError(spec, io, (error as Error).message);
  }
  if (parsed.values.help === true) {
    printUsage(io.out, spec.usage);
    return 0;
  }
  return { values: parsed.values as Values<O>, positionals: parsed.positionals };
}

/** The configuration named by `--config`, or the default one. */
export function loadFor(io: CliIo, values: { config?: string }): Promise<LoadedConfig> {
  const file = values.config;
  return loadConfig({ env: io.env, cwd: io.cwd, ...(file === undefined ? {} : { file }) });
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
export function fleetOptions(
  values: { devices?: string; rate?: string; auth?: string },
  defaultDevices: number,
): FleetOptionValues | string {
  const devices = values.devices === undefined ? defaultDevices : Number(values.devices);
  if (!Number.isInteger(devices) || devices < 1 || devices > 10_000)
    return '--devices: an integer from 1 to 10000';
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && (!Number.isFinite(rate) || rate <= 0)) return '--rate: messages per second, > 0';
  const auth = values.auth ?? 'mtls';
  if (auth !== 'mtls' && auth !== 'token') return '--auth: mtls or token';
  return { devices, rate, auth };
}

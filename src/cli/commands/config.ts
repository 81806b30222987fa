import { type ParseArgsConfig, parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { ConfigError } from '../../common/index.js';
import { DEFAULT_CONFIG_FILE, type LoadedConfig, loadConfig, redactConfig } from '../../config/index.js';
import type { CliIo, Command } from '../io.js';

const USAGE = [
  'usage: iotdr config <subcommand> [options]',
  '',
  'subcommands:',
  '  check            validate the configuration and list every problem (exit 1 if any)',
  '  print            print the effective configuration: defaults filled in, secrets redacted',
  '',
  'options:',
  `  --config FILE    configuration file (default: $IOTDR_CONFIG, else ./${DEFAULT_CONFIG_FILE} if present)`,
  '  --json           print: JSON instead of YAML',
  '  -h, --help       show this help',
];

type Options = NonNullable<ParseArgsConfig['options']>;

const common: Options = {
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

interface Values {
  config?: string | undefined;
  json?: boolean | undefined;
  help?: boolean | undefined;
}

interface Subcommand {
  options: Options;
  run: (values: Values, io: CliIo) => Promise<number>;
}

const subcommands: Record<string, Subcommand> = {
  check: { options: common, run: check },
  print: { options: { ...common, json: { type: 'boolean' } }, run: print },
};

function usage(write: (line: string) => void): void {
  for (const line of USAGE) write(line);
}

function badUsage(io: CliIo, message: string): number {
  io.err(`iotdr config: ${message}`);
  usage(io.err);
  return 2;
}

/** Loads the configuration, or prints every problem under a header naming the file and returns undefined. */
async function load(values: Values, io: CliIo): Promise<LoadedConfig | undefined> {
  try {
    return await loadConfig({ file: values.config, env: io.env, cwd: io.cwd });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.err(error.message);
    for (const issue of error.issues) io.err(`  ${issue.path}: ${issue.message}`);
    return undefined;
  }
}

async function check(values: Values, io: CliIo): Promise<number> {
  const loaded = await load(values, io);
  if (loaded === undefined) return 1;
  io.out(`ok: ${loaded.source}`);
  return 0;
}

async function print(values: Values, io: CliIo): Promise<number> {
  const loaded = await load(values, io);
  if (loaded === undefined) return 1;
  const redacted = redactConfig(loaded.config);
  if (values.json === true) {
    io.out(JSON.stringify(redacted, null, 2));
    return 0;
  }
  // Comments, so the output still loads as a configuration file.
  io.out(`# effective configuration from ${loaded.source}; secrets redacted`);
  io.out(`# state directory: ${loaded.stateDir}`);
  io.out(stringify(redacted).trimEnd());
  return 0;
}

export const configCommand: Command = async (argv, io) => {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    usage(io.out);
    return 0;
  }
  if (name === undefined) return badUsage(io, 'missing subcommand');
  const subcommand = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (subcommand === undefined) return badUsage(io, `unknown subcommand '${name}'`);
  let values: Values;
  try {
    const parsed = parseArgs({
      args: rest,
      options: subcommand.options,
      strict: true,
      allowPositionals: false,
    });
    const { config, json, help } = parsed.values;
    values = {
      config: typeof config === 'string' ? config : undefined,
      json: json === true,
      help: help === true,
    };
  } catch (error) {
    return badUsage(io, (error as Error).message);
  }
  if (values.help === true) {
    usage(io.out);
    return 0;
  }
  return subcommand.run(values, io);
};

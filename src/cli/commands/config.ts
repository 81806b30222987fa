import { stringify } from 'yaml';
import { ConfigError } from '../../common/index.js';
import { DEFAULT_CONFIG_FILE, type LoadedConfig, redactConfig } from '../../config/index.js';
import { loadFor, type OptionSpec, parseCommand, printUsage, usageError, type Values } from '../args.js';
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

const SPEC = { name: 'config', usage: USAGE.join('\n') };

/** `--json` is print's; every subcommand takes `--config` and `--help`. */
const PRINT_OPTIONS = { json: { type: 'boolean' } } as const satisfies OptionSpec;
type ConfigValues = Values<typeof PRINT_OPTIONS>;

interface Subcommand {
  options: OptionSpec;
  run: (values: ConfigValues, io: CliIo) => Promise<number>;
}

const subcommands: Record<string, Subcommand> = {
  check: { options: {}, run: check },
  print: { options: PRINT_OPTIONS, run: print },
};

/** Loads the configuration, or prints every problem under a header naming the file and returns undefined. */
async function load(values: ConfigValues, io: CliIo): Promise<LoadedConfig | undefined> {
  try {
    return await loadFor(io, values);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.err(error.message);
    for (const issue of error.issues) io.err(`  ${issue.path}: ${issue.message}`);
    return undefined;
  }
}

async function check(values: ConfigValues, io: CliIo): Promise<number> {
  const loaded = await load(values, io);
  if (loaded === undefined) return 1;
  io.out(`ok: ${loaded.source}`);
  return 0;
}

async function print(values: ConfigValues, io: CliIo): Promise<number> {
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
    printUsage(io.out, SPEC.usage);
    return 0;
  }
  if (name === undefined) return usageError(SPEC, io, 'missing subcommand');
  const subcommand = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (subcommand === undefined) return usageError(SPEC, io, `unknown subcommand '${name}'`);
  const parsed = parseCommand({ ...SPEC, options: subcommand.options }, rest, io);
  if (typeof parsed === 'number') return parsed;
  return subcommand.run(parsed.values, io);
};

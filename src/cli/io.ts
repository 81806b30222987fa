/** Where a CLI command writes; injected so tests capture output without spawning. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  cwd: process.cwd(),
};

/** A command takes its arguments (after its own name) and returns the process exit code. */
export type Command = (argv: string[], io: CliIo) => Promise<number>;

import { constants } from 'node:os';
import type { CliIo } from './io.js';

/** How a child process ended: its exit code, or the signal that ended it. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A server a command runs as its child (etcd, nats-server). */
export interface ServerChild {
  /** Resolves when the child has exited. */
  readonly exited: Promise<ChildExit>;
  /** Sends the child a signal. */
  kill(signal: NodeJS.Signals): void;
}

/**
 * Waits for a command's server child to exit, passing SIGINT and SIGTERM on to it (as `stopWith`
 * when given, else as received), so the command never outlives the server's ports and data. Returns
 * the command's exit code: the child's own, 0 when the signal passed on ended it, and for any other
 * signal 128 + its number, the shell's way, reported as `<command>: <what> ended by <signal>`.
 */
export async function exitWithServer(
  io: CliIo,
  command: string,
  what: string,
  child: ServerChild,
  stopWith?: NodeJS.Signals,
): Promise<number> {
  let sent: NodeJS.Signals | undefined;
  const forward = (signal: NodeJS.Signals) => {
    sent = stopWith ?? signal;
    child.kill(sent);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const { code, signal } = await child.exited;
    if (signal === null) return code ?? 1;
    if (signal === sent) return 0;
    io.err(`${command}: ${what} ended by ${signal}`);
    return 128 + (constants.signals[signal] ?? 0);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

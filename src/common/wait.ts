import { IotdrError } from './errors.js';

export interface WaitOptions {
  /** How long the wait may last, ms. */
  timeoutMs: number;
  /** What is awaited, for the timeout's message ("every device back"). */
  what: string;
  /** Between two checks, ms. Default 100. */
  intervalMs?: number;
  /** The state as one line: added to the timeout's message, and shown every `showEveryMs` to `show`. */
  status?: () => string;
  show?: (line: string) => void;
  /** Default 3000. */
  showEveryMs?: number;
  /** Aborted: the wait ends with `abortError()`. */
  signal?: AbortSignal;
  /**
   * Whether an error the check throws ends the wait (it is rethrown); any other is "not yet" (a
   * process restarting, a connection refused). Default: none ends it.
   */
  fatal?: (error: unknown) => boolean;
  /** The error at the deadline. Default: IotdrError IOTDR_WAIT_TIMEOUT with the message. */
  timeoutError?: (message: string) => Error;
  /** The error when `signal` aborts. Default: IotdrError IOTDR_WAIT_ABORTED. */
  abortError?: () => Error;
}

/**
 * Checks until `check` says true, the time runs out or `signal` aborts: the one wait-until of the
 * project (the drill's waits, the tests' `eventually`). The timeout's message says how long, what
 * for, the status line if any, and the last error the check threw.
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  options: WaitOptions,
): Promise<void> {
  const interval = options.intervalMs ?? 100;
  const showEvery = options.showEveryMs ?? 3000;
  const deadline = Date.now() + options.timeoutMs;
  let shownAt = Date.now();
  let lastError: unknown;
  for (;;) {
    if (options.signal?.aborted)
      throw (
        options.abortError?.() ?? new IotdrError('IOTDR_WAIT_ABORTED', `stopped waiting for ${options.what}`)
      );
    if (options.show && options.status && Date.now() - shownAt >= showEvery) {
      options.show(options.status());
      shownAt = Date.now();
    }
    try {
      if (await check()) return;
    } catch (error) {
      if (options.fatal?.(error)) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(interval, Math.max(0, deadline - Date.now()))),
    );
  }
  const status = options.status ? ` (${options.status()})` : '';
  const last =
    lastError === undefined
      ? ''
      : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
  const message = `timed out after ${options.timeoutMs} ms waiting for ${options.what}${status}${last}`;
  throw options.timeoutError?.(message) ?? new IotdrError('IOTDR_WAIT_TIMEOUT', message);
}

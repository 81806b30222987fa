import type { Logger } from './logger.js';

/**
 * What a process started, closed in reverse order of start, each once. A close that fails is
 * logged and the others still run, so a failed start or a stop never leaves a listener behind.
 */
export class Closers {
  readonly #list: Array<() => Promise<void> | void> = [];
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  add(close: () => Promise<void> | void): void {
    this.#list.push(close);
  }

  /** Closes everything added so far; later calls return the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const close of this.#list.splice(0).reverse()) {
        try {
          await close();
        } catch (error) {
          this.#logger.warn(
            { err: error instanceof Error ? error.message : String(error) },
            'closing failed',
          );
        }
      }
    })();
    return this.#closing;
  }
}

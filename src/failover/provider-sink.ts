/**
 * Hands the controller's decisions to a DNS provider. A provider that fails (PowerDNS down, its
 * API refusing) is retried with backoff until it takes the latest decision, so a DNS that was away
 * during a switch catches up without waiting for the next one; a newer decision replaces the one
 * being retried.
 */
import { backoffMs, type Logger } from '../common/index.js';
import type { DnsProvider } from '../dns/index.js';
import { StaleEpochError } from '../dns/index.js';
import type { Decision, DecisionSink } from './types.js';

export interface ProviderSinkOptions {
  readonly provider: DnsProvider;
  /** The address the fleet's names answer for a region. */
  readonly addressOf: (region: string) => string;
  /** Backoff between retries: full jitter up to min(capMs, baseMs × 2^attempt). */
  readonly retry?: { readonly baseMs: number; readonly capMs: number };
  readonly logger?: Logger;
}

export const DEFAULT_PROVIDER_RETRY = { baseMs: 250, capMs: 10_000 } as const;

export class ProviderSink implements DecisionSink {
  readonly name: string;
  readonly #options: ProviderSinkOptions;
  #latest: Decision | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;

  constructor(options: ProviderSinkOptions) {
    this.#options = options;
    this.name = options.provider.kind;
  }

  /** Applies the decision; when that fails, retries in the background and rethrows for the log. */
  async apply(decision: Decision): Promise<void> {
    this.#latest = decision;
    this.#attempt = 0;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      await this.#push(decision);
    } catch (error) {
      if (!(error instanceof StaleEpochError)) this.#schedule();
      throw error;
    }
  }

  /** Whether a decision is still waiting to be taken by the provider. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#options.provider.close();
  }

  #push(decision: Decision): Promise<void> {
    return this.#options.provider.apply({
      region: decision.activeRegion,
      address: this.#options.addressOf(decision.activeRegion),
      epoch: decision.epoch,
    });
  }

  #schedule(): void {
    if (this.#closed) return;
    const retry = this.#options.retry ?? DEFAULT_PROVIDER_RETRY;
    this.#attempt += 1;
    const delay = backoffMs(this.#attempt, retry.baseMs, retry.capMs, Math.random);
    const timer = setTimeout(async () => {
      const decision = this.#latest;
      if (this.#timer !== timer || !decision) return;
      try {
        await this.#push(decision);
        if (this.#timer !== timer) return;
        this.#timer = undefined;
        this.#options.logger?.info(
          {
            provider: this.name,
            region: decision.activeRegion,
            epoch: decision.epoch,
            attempts: this.#attempt,
          },
          'the DNS provider took the decision after retrying',
        );
      } catch (error) {
        if (this.#timer !== timer) return;
        this.#timer = undefined;
        if (error instanceof StaleEpochError) {
          this.#options.logger?.error(
            { err: error, provider: this.name },
            'the DNS provider refuses the decision as stale',
          );
          return;
        }
        this.#options.logger?.warn(
          { err: (error as Error).message, provider: this.name, attempt: this.#attempt },
          'the DNS provider still does not take the decision; retrying',
        );
        this.#schedule();
      }
    }, delay);
    timer.unref();
    this.#timer = timer;
  }
}

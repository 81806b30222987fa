import { DEFAULT_CHECK_TIMEOUT_MS } from './config.js';
import { ObservationDeliveryError } from './errors.js';
import type { Observation, ObservationSink } from './types.js';

export interface HttpObservationSinkOptions {
  /** Base URL of the controller (`iotdr control`), e.g. http://127.0.0.10:8080. */
  controlUrl: string;
  /** Bearer token with the operator (or admin) role. */
  token: string;
  /** Time a delivery may take, in ms. Default 1,000. */
  timeoutMs?: number;
}

/**
 * Delivers a remote checker's observations to the controller: POST /v1/observations. A failed
 * delivery is not retried: the next probe's observation is newer and worth more, and a checker
 * whose observations stop arriving simply stops voting.
 */
export class HttpObservationSink implements ObservationSink {
  readonly #url: string;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor(options: HttpObservationSinkOptions) {
    this.#url = `${options.controlUrl.replace(/\/+$/, '')}/v1/observations`;
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  }

  async report(observations: Observation[]): Promise<void> {
    const checker = observations[0]?.checker;
    if (checker === undefined) return;
    let res: Response;
    try {
      res = await fetch(this.#url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.#token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ checker, observations }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new ObservationDeliveryError(`cannot reach the controller at ${this.#url}`, {}, error);
    }
    if (res.status === 202) {
      await res.body?.cancel();
      return;
    }
    const text = await res.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { code?: string }).code;
    } catch {
      code = undefined;
    }
    throw new ObservationDeliveryError(
      `the controller refused the observations: ${res.status} ${code ?? text.slice(0, 200)}`,
      {
        status: res.status,
        ...(code ? { code } : {}),
      },
    );
  }
}

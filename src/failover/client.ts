import type { Agent } from 'node:https';
import { ApiClient, CallError } from '../http/index.js';
import { DEFAULT_CHECK_TIMEOUT_MS } from './config.js';
import { FAILOVER_ROUTES } from './contracts.js';
import { ObservationDeliveryError } from './errors.js';
import type { Observation, ObservationSink } from './types.js';

export interface HttpObservationSinkOptions {
  /** Base URL of the controller (`iotdr control`), e.g. http://127.0.0.10:8080. */
  controlUrl: string;
  /** Bearer token with the operator (or admin) role, on plain loopback links. */
  token?: string;
  /** The checker's site agent (mutual TLS): control knows the checker by its certificate. */
  agent?: Agent;
  /** Time a delivery may take, in ms. Default 1,000. */
  timeoutMs?: number;
}

/**
 * Delivers a remote checker's observations to the controller: POST /v1/observations. A failed
 * delivery is not retried: the next probe's observation is newer and worth more, and a checker
 * whose observations stop arriving simply stops voting.
 */
export class HttpObservationSink implements ObservationSink {
  readonly #control: ApiClient;
  readonly #timeoutMs: number;

  constructor(options: HttpObservationSinkOptions) {
    this.#control = new ApiClient(
      'control',
      options.controlUrl.replace(/\/+$/, ''),
      options.agent === undefined ? options.token : undefined,
      options.agent,
    );
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  }

  async report(observations: Observation[]): Promise<void> {
    const checker = observations[0]?.checker;
    if (checker === undefined) return;
    try {
      await this.#control.request(FAILOVER_ROUTES.observations, {
        body: { checker, observations },
        timeoutMs: this.#timeoutMs,
      });
    } catch (error) {
      if (!(error instanceof CallError)) throw error;
      const url = `${this.#control.base}${FAILOVER_ROUTES.observations.url}`;
      const failure = error.failure;
      switch (failure.type) {
        case 'timeout':
        case 'unreachable':
          throw new ObservationDeliveryError(`cannot reach the controller at ${url}`, {}, error);
        case 'refused':
          throw new ObservationDeliveryError(
            `the controller refused the observations: ${failure.status} ${failure.code ?? failure.excerpt}`,
            { status: failure.status, ...(failure.code ? { code: failure.code } : {}) },
            error,
          );
        case 'unexpected':
          throw new ObservationDeliveryError(
            `the controller's answer to the observations is not this version's: ${failure.status} ${failure.why}`,
            { status: failure.status },
            error,
          );
      }
    }
  }
}

/**
 * Delivers every observation to several sinks at once: a control node's checker reports to its own
 * controller and to every other node, so whichever node leads next counts fresh votes. A sink that
 * fails does not hold back the others; the failures are reported together once all have answered.
 */
export class FanOutSink implements ObservationSink {
  readonly #sinks: readonly { readonly name: string; readonly sink: ObservationSink }[];

  constructor(sinks: readonly { readonly name: string; readonly sink: ObservationSink }[]) {
    this.#sinks = sinks;
  }

  async report(observations: Observation[]): Promise<void> {
    const results = await Promise.allSettled(this.#sinks.map(({ sink }) => sink.report(observations)));
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected'
        ? [`${this.#sinks[i]?.name}: ${(r.reason as Error)?.message ?? String(r.reason)}`]
        : [],
    );
    if (failed.length > 0)
      throw new ObservationDeliveryError(
        `${failed.length} of ${this.#sinks.length} control nodes did not take the observations: ${failed.join('; ')}`,
        { failed },
      );
  }
}

import type { Agent } from 'node:https';
import { type ErrorCode, relayedCode } from '../common/index.js';
import {
  type AnswerOf,
  ApiClient,
  CallError,
  type CallFailure,
  type CallInput,
  type RawAnswer,
  type RouteContract,
  type SuccessOf,
  sendRequest,
  systemCause,
} from '../http/index.js';
import { DEFAULT_CHECK_TIMEOUT_MS } from './config.js';
import { FAILOVER_ROUTES } from './contracts.js';
import {
  ControlUnreachableError,
  FailoverConfigError,
  type NodeFailure,
  ObservationDeliveryError,
} from './errors.js';
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

/** A control node as a client calls it. */
export interface ControlEndpoint {
  /** The node's name (`control` for the single node), as failures name it. */
  readonly name: string;
  /** Base URL of its control API, e.g. https://127.0.0.21:8080. */
  readonly url: string;
  /**
   * How to trust its HTTPS: the CA (PEM), for a person's tool; or the caller's site agent for this
   * node (site `{ kind: 'control', name }`), which presents the caller's certificate and checks
   * that the peer is this node.
   */
  readonly trust?: string | Agent;
}

/** A request the caller writes itself, for `ControlClient.send`. */
export interface ControlRequest {
  readonly method: string;
  /** Path and query, e.g. `/v1/failover/events?after=3`. */
  readonly path: string;
  /** Sent as given; an `authorization` here replaces the client's token. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Longest one node may take, ms, its answer's body included. */
  readonly timeoutMs: number;
  /** Ends the call when it aborts, whichever node it is at: it then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Why a node is passed over: thrown by `send` within the client, never out of it. */
class NodePassed extends Error {
  constructor(readonly failure: CallFailure) {
    super(failure.type);
  }
}

/**
 * The control API over every control node. A call goes first to the node that answered last (the
 * first listed, at the start); when that node cannot be reached, gives no answer in time, or
 * answers 502 or 503 (it cannot reach the leader, nobody leads, or it is stopping), the call goes
 * to the next one, round the list. It fails only when every node failed, with a
 * ControlUnreachableError naming each one's failure. Any other answer, success or error, is the
 * call's. A routing control may so reach a second node after the first took it without answering
 * in time; taking it twice changes nothing more (the same override; a failback already done is
 * refused with 409).
 */
export class ControlClient {
  readonly #nodes: readonly { readonly endpoint: ControlEndpoint; readonly api: ApiClient }[];
  readonly #token: string | undefined;
  #current = 0;

  /** `token`: the bearer token every call carries; none for a caller known by its site agent. */
  constructor(nodes: readonly ControlEndpoint[], token?: string) {
    if (nodes.length === 0) throw new FailoverConfigError('a control client needs at least one control node');
    this.#nodes = nodes.map((node) => {
      const endpoint = { ...node, url: node.url.replace(/\/+$/, '') };
      const name = nodes.length === 1 ? 'control' : `control node ${node.name}`;
      return { endpoint, api: new ApiClient(name, endpoint.url, token, node.trust) };
    });
    this.#token = token;
  }

  /** The node the next call goes to first: the one that answered last. */
  get current(): ControlEndpoint {
    return (this.#nodes[this.#current] as { endpoint: ControlEndpoint }).endpoint;
  }

  /** `ApiClient.request` at the first node that answers. */
  request<C extends RouteContract>(contract: C, ...input: CallInput<C>): Promise<SuccessOf<C>> {
    return this.#first((node) => node.api.request(contract, ...input));
  }

  /** `ApiClient.requestAny` at the first node that answers (a 502 or 503 is never its answer). */
  requestAny<C extends RouteContract>(contract: C, ...input: CallInput<C>): Promise<AnswerOf<C>> {
    return this.#first((node) => node.api.requestAny(contract, ...input));
  }

  /** A request of the caller's own making at the first node that answers: its status and body as they came. */
  send(request: ControlRequest): Promise<RawAnswer> {
    return this.#first((node) => this.#send(node.endpoint, request));
  }

  async #send(endpoint: ControlEndpoint, request: ControlRequest): Promise<RawAnswer> {
    const timeout = AbortSignal.timeout(request.timeoutMs);
    let answer: RawAnswer;
    try {
      answer = await sendRequest(`${endpoint.url}${request.path}`, {
        method: request.method,
        headers: {
          ...(this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` }),
          ...request.headers,
        },
        ...(request.body === undefined ? {} : { body: request.body }),
        ...(endpoint.trust === undefined ? {} : { trust: endpoint.trust }),
        signal: request.signal ? AbortSignal.any([request.signal, timeout]) : timeout,
      });
    } catch (error) {
      if (request.signal?.aborted) throw request.signal.reason;
      throw new NodePassed(
        timeout.aborted
          ? { type: 'timeout', timeoutMs: request.timeoutMs }
          : { type: 'unreachable', cause: systemCause(error) },
      );
    }
    if (answer.status === 502 || answer.status === 503)
      throw new NodePassed({
        type: 'refused',
        status: answer.status,
        code: problemCode(answer.text),
        excerpt: answer.text.slice(0, 200),
      });
    return answer;
  }

  async #first<T>(call: (node: { endpoint: ControlEndpoint; api: ApiClient }) => Promise<T>): Promise<T> {
    const failures: NodeFailure[] = [];
    const start = this.#current;
    for (let k = 0; k < this.#nodes.length; k++) {
      const i = (start + k) % this.#nodes.length;
      const node = this.#nodes[i] as { endpoint: ControlEndpoint; api: ApiClient };
      try {
        const result = await call(node);
        this.#current = i;
        return result;
      } catch (error) {
        const failure = passedBecause(error);
        if (failure === undefined) {
          // An error answer is an answer: the node is up.
          if (error instanceof CallError) this.#current = i;
          throw error;
        }
        failures.push({ node: node.endpoint.name, url: node.endpoint.url, failure });
      }
    }
    throw new ControlUnreachableError(failures);
  }
}

/** Why the call goes on to the next node: none answered (in time), or it answered 502 or 503. */
function passedBecause(error: unknown): CallFailure | undefined {
  if (error instanceof NodePassed) return error.failure;
  if (!(error instanceof CallError)) return undefined;
  const failure = error.failure;
  if (failure.type === 'timeout' || failure.type === 'unreachable') return failure;
  if (failure.type === 'refused' && (failure.status === 502 || failure.status === 503)) return failure;
  return undefined;
}

/** The code of a problem+json body, when it has one. */
function problemCode(text: string): ErrorCode | undefined {
  try {
    const code = relayedCode(
      (JSON.parse(text) as { code?: unknown } | null)?.code,
      'IOTDR_CLI_REQUEST_FAILED',
    );
    return code === 'IOTDR_CLI_REQUEST_FAILED' ? undefined : code;
  } catch {
    return undefined;
  }
}

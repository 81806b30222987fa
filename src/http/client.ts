/**
 * A client of iotdr's HTTP APIs (a region's, control's, command and control's, analytics') for the
 * CLI, the fleet, the drill and the control plane's own callers (checkers, the switch executor,
 * DNS followers): bearer token, JSON in and out, an HTTPS listener verified against the embedded
 * CA, and a problem+json answer turned into an IotdrError with its code and issues. Calls go
 * through route contracts, so an answer is typed by the route's own response schema and checked
 * against it when it arrives.
 *
 * Connections go through node's global agent, which keeps them alive between calls (since Node 19:
 * idle ones close after 5 s, or 1 s before the server's `Keep-Alive: timeout` hint, and never hold
 * the process open), or through the agent given as `trust`: a site's, which presents its site
 * certificate and checks the peer's (mutual TLS, tls.ts), and which its owner closes. So a checker
 * probing a region every second reuses one connection.
 */
import { request as httpRequest } from 'node:http';
import { type Agent, request as httpsRequest } from 'node:https';
import { type ErrorCode, type FieldIssue, IotdrError, relayedCode } from '../common/index.js';
import type { AnswerOf, RawBody, RequestOf, RouteContract, SuccessOf } from './contract.js';

/** How long one API call may take by default, in ms. */
export const CALL_TIMEOUT_MS = 30_000;

/** Longest part of an answer's body kept in a CallFailure, in characters. */
const EXCERPT_CHARS = 200;

export interface CallOptions {
  /** Longest the call may take, ms, answer's body included. Default CALL_TIMEOUT_MS (30 s). */
  timeoutMs?: number;
  /** Ends the call when it aborts: the call then rejects with the signal's reason, as fetch does. */
  signal?: AbortSignal;
}

/**
 * Why a call failed, for a caller that records it (an observation, a switch step, a follower's
 * health) rather than passing the error on: no answer in time, no connection (`cause`: the
 * system's code, ECONNREFUSED, or the message), an error answer (`code`: iotdr's, undefined when
 * the answer was not iotdr's problem+json), or an answer its contract does not describe.
 */
export type CallFailure =
  | { type: 'timeout'; timeoutMs: number }
  | { type: 'unreachable'; cause: string }
  | { type: 'refused'; status: number; code: ErrorCode | undefined; excerpt: string }
  | { type: 'unexpected'; status: number; why: string };

/** The error of a call: an IotdrError with its code, and why it failed as a union. */
export class CallError extends IotdrError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly failure: CallFailure,
    options: { status?: number; issues?: FieldIssue[]; cause?: unknown } = {},
  ) {
    super(code, message, options);
  }
}

/** A call's input: required when the route requires something, else optional. */
export type CallInput<C extends RouteContract> =
  Partial<RequestOf<C>> extends RequestOf<C>
    ? [input?: RequestOf<C> & CallOptions]
    : [input: RequestOf<C> & CallOptions];

/** A raw answer: its status and body text. */
export interface RawAnswer {
  status: number;
  text: string;
  /** The answer's Content-Type, when it has one. */
  contentType?: string;
}
type Answer = RawAnswer;

/** One of iotdr's APIs with a token; a problem+json answer becomes an IotdrError. */
export class ApiClient {
  constructor(
    /** Who answers, as messages name it: a region, `control`, `api.<zone> (region)`. */
    readonly name: string,
    /** The base URL, without a trailing slash. */
    readonly base: string,
    /** The bearer token; undefined for a caller of public routes only (a checker's GET /health). */
    readonly token: string | undefined,
    /**
     * How to trust an HTTPS listener: the CA (PEM) to verify it against, for a person's tool; or
     * the agent of a site (`siteAgent`), which also presents the site's certificate and checks the
     * peer's site.
     */
    readonly trust?: string | Agent,
  ) {}

  /**
   * Calls the route: the path is built from `params` (each encoded), the query from `query`, the
   * body is `body` as JSON. Resolves with the success answered, parsed by the route's schema for
   * its status; any other answer is thrown as a CallError.
   */
  async request<C extends RouteContract>(contract: C, ...[input]: CallInput<C>): Promise<SuccessOf<C>> {
    const { res, what } = await this.#call(contract, input);
    if (res.status < 200 || res.status >= 300) throw refusal(res, this.name, what);
    return bodyOf(contract, res, `${this.name}: ${what}`) as SuccessOf<C>;
  }

  /**
   * Like `request`, but resolves with every answer the route declares, as `{ status, body }`:
   * for a caller to whom a declared non-2xx is an answer, not a failure (GET /health's 503 carries
   * the health report). An answer of a status it does not declare is thrown as by `request`.
   */
  async requestAny<C extends RouteContract>(contract: C, ...[input]: CallInput<C>): Promise<AnswerOf<C>> {
    const { res, what } = await this.#call(contract, input);
    const declared = contract.responses[res.status] !== undefined;
    if (!declared && (res.status < 200 || res.status >= 300)) throw refusal(res, this.name, what);
    return { status: res.status, body: bodyOf(contract, res, `${this.name}: ${what}`) } as AnswerOf<C>;
  }

  async #call(contract: RouteContract, input: object | undefined): Promise<{ res: Answer; what: string }> {
    const given = (input ?? {}) as {
      params?: object;
      query?: object;
      body?: unknown;
      raw?: RawBody;
    } & CallOptions;
    const path = pathOf(contract.url, given.params) + queryOf(given.query);
    const what = `${contract.method} ${path}`;
    const body = given.raw?.text ?? (given.body === undefined ? undefined : JSON.stringify(given.body));
    const contentType = given.raw?.contentType ?? (given.body === undefined ? undefined : 'application/json');
    const timeoutMs = given.timeoutMs ?? CALL_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const res = await sendRequest(`${this.base}${path}`, {
        method: contract.method,
        headers: {
          ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
          ...(contentType === undefined ? {} : { 'content-type': contentType }),
        },
        ...(body === undefined ? {} : { body }),
        ...(this.trust === undefined ? {} : { trust: this.trust }),
        signal: given.signal ? AbortSignal.any([given.signal, timeout]) : timeout,
      });
      return { res, what };
    } catch (error) {
      if (given.signal?.aborted) throw given.signal.reason;
      const failure: CallFailure = timeout.aborted
        ? { type: 'timeout', timeoutMs }
        : { type: 'unreachable', cause: systemCause(error) };
      const why = failure.type === 'timeout' ? `no answer within ${timeoutMs} ms` : (error as Error).message;
      throw new CallError(
        'IOTDR_CLI_UNREACHABLE',
        `cannot reach ${this.name} at ${this.base} (${why}): is it running?`,
        failure,
        { cause: error },
      );
    }
  }
}

/** A non-2xx answer as an error: problem+json (RFC 9457) keeps its code; a proxy's page has none. */
function refusal(res: Answer, name: string, what: string): CallError {
  const parsed = parseJson(res.text);
  const p = (parsed !== undefined && parsed !== null && typeof parsed === 'object' ? parsed : {}) as {
    code?: unknown;
    detail?: unknown;
    errors?: unknown;
  };
  const code = relayedCode(p.code, 'IOTDR_CLI_REQUEST_FAILED');
  return new CallError(
    code,
    `${name}: ${typeof p.detail === 'string' ? p.detail : `${what}: HTTP ${res.status}`}`,
    {
      type: 'refused',
      status: res.status,
      code: code === 'IOTDR_CLI_REQUEST_FAILED' ? undefined : code,
      excerpt: res.text.slice(0, EXCERPT_CHARS),
    },
    { status: res.status, issues: Array.isArray(p.errors) ? (p.errors as FieldIssue[]) : [] },
  );
}

/** The answer's body parsed by the schema of its status; one the contract does not describe, thrown. */
function bodyOf(contract: RouteContract, res: Answer, what: string): unknown {
  const schema = contract.responses[res.status];
  if (schema === undefined)
    throw unexpected(what, res.status, `HTTP ${res.status} is not an answer it documents`, []);
  const parsed = parseJson(res.text);
  if (parsed === undefined) throw unexpected(what, res.status, 'the body is not JSON', []);
  const checked = schema.safeParse(parsed);
  if (!checked.success) {
    const issues = checked.error.issues.map((i) => ({
      path: ['response', ...i.path.map(String)].join('.'),
      message: i.message,
    }));
    throw unexpected(what, res.status, issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues);
  }
  return checked.data;
}

/** The JSON of a body, null for an empty one, undefined when it is not JSON. */
function parseJson(text: string): unknown {
  if (text.length === 0) return null;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An answer the route's contract does not describe: a server of another version, or a bug. */
function unexpected(what: string, status: number, why: string, issues: FieldIssue[]): CallError {
  return new CallError(
    'IOTDR_HTTP_UNEXPECTED_RESPONSE',
    `${what}: the answer does not match the API's schema (${why}); is it the same iotdr version?`,
    { type: 'unexpected', status, why },
    { issues },
  );
}

/** ECONNREFUSED, ECONNRESET, a TLS code…: what the system says, or the message. */
export function systemCause(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // A peer that is not the site called says which site it is: the message is the cause.
  if (code === 'ERR_IOTDR_SITE_MISMATCH') return `${code}: ${(error as Error).message}`;
  return typeof code === 'string' ? code : String((error as Error | undefined)?.message ?? error);
}

/** `/v1/things/:name` with `{ name: 'a b' }` → `/v1/things/a%20b`. */
function pathOf(pattern: string, params: object | undefined): string {
  const values = (params ?? {}) as Record<string, unknown>;
  return pattern.replace(/:([A-Za-z0-9_]+)/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined || value === null)
      throw new TypeError(`${pattern}: the path parameter '${key}' is missing`);
    return encodeURIComponent(String(value));
  });
}

/** `?a=1&b=x` from the defined values, or nothing. */
function queryOf(query: object | undefined): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {}))
    if (value !== undefined && value !== null) search.set(key, String(value));
  const text = search.toString();
  return text.length > 0 ? `?${text}` : '';
}

/**
 * One HTTP(S) request with node's own client, so an HTTPS listener is verified against the CA given
 * in `trust`, or through a site's agent (mutual TLS). For callers that read a feed by hand (the
 * replication feed, the event bus's readers) as well as for ApiClient.
 */
export function sendRequest(
  url: string,
  options: {
    method: string;
    headers: Record<string, string>;
    body?: string;
    trust?: string | Agent;
    /** Ends the request, its answer's body included. */
    signal: AbortSignal;
  },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: options.method,
        headers: options.headers,
        signal: options.signal,
        ...(secure && typeof options.trust === 'string' ? { ca: options.trust } : {}),
        ...(secure && typeof options.trust === 'object' ? { agent: options.trust } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            ...(res.headers['content-type'] === undefined
              ? {}
              : { contentType: res.headers['content-type'] }),
          }),
        );
        res.on('error', reject);
        // An answer cut off (the signal, or the server gone) ends without 'end'.
        res.on('close', () => {
          if (!res.complete) reject(new Error('the answer was cut off'));
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

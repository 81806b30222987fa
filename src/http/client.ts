/**
 * A client of iotdr's HTTP APIs (a region's, control's, command and control's, analytics') for the
 * CLI, the fleet and the drill: bearer token, JSON in and out, an HTTPS listener verified against
 * the embedded CA, and a problem+json answer turned into an IotdrError with its code and issues.
 * Calls go through route contracts, so an answer is typed by the route's own response schema and
 * checked against it when it arrives.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type FieldIssue, IotdrError, relayedCode } from '../common/index.js';
import type { RawBody, RequestOf, RouteContract, SuccessOf } from './contract.js';

/** How long one API call may take by default, in ms. */
export const CALL_TIMEOUT_MS = 30_000;

export interface CallOptions {
  /** Longest the call may take, ms. Default CALL_TIMEOUT_MS (30 s). */
  timeoutMs?: number;
}

/** One of iotdr's APIs with a token; a problem+json answer becomes an IotdrError. */
export class ApiClient {
  constructor(
    /** Who answers, as messages name it: a region, `control`, `api.<zone> (region)`. */
    readonly name: string,
    /** The base URL, without a trailing slash. */
    readonly base: string,
    readonly token: string,
    /** The CA to verify an HTTPS listener against (the embedded CA). */
    readonly ca?: string,
  ) {}

  /**
   * Calls the route: the path is built from `params` (each encoded), the query from `query`, the
   * body is `body` as JSON. Resolves with the answer parsed by the route's schema for its status.
   */
  async request<C extends RouteContract>(
    contract: C,
    ...[input]: Partial<RequestOf<C>> extends RequestOf<C>
      ? [input?: RequestOf<C> & CallOptions]
      : [input: RequestOf<C> & CallOptions]
  ): Promise<SuccessOf<C>> {
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
    let res: { status: number; text: string };
    try {
      res = await send(`${this.base}${path}`, {
        method: contract.method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(contentType === undefined ? {} : { 'content-type': contentType }),
        },
        ...(body === undefined ? {} : { body }),
        ...(this.ca === undefined ? {} : { ca: this.ca }),
        timeoutMs: given.timeoutMs ?? CALL_TIMEOUT_MS,
      });
    } catch (error) {
      throw new IotdrError(
        'IOTDR_CLI_UNREACHABLE',
        `cannot reach ${this.name} at ${this.base} (${(error as Error).message}): is it running?`,
        { cause: error },
      );
    }
    return answerOf(contract, res, this.name, what);
  }
}

/** The success a route answered, parsed by the schema of its status; any other answer, thrown. */
function answerOf<C extends RouteContract>(
  contract: C,
  res: { status: number; text: string },
  /** Who answered, and `METHOD /path`: what messages name. */
  name: string,
  what: string,
): SuccessOf<C> {
  let parsed: unknown = null;
  let json = true;
  try {
    if (res.text.length > 0) parsed = JSON.parse(res.text);
  } catch {
    json = false;
  }
  if (res.status < 200 || res.status >= 300) {
    // problem+json (RFC 9457) with iotdr's code; a proxy's page or another server's has none.
    const p = (json && parsed !== null && typeof parsed === 'object' ? parsed : {}) as {
      code?: unknown;
      detail?: unknown;
      errors?: unknown;
    };
    throw new IotdrError(
      relayedCode(p.code, 'IOTDR_CLI_REQUEST_FAILED'),
      `${name}: ${typeof p.detail === 'string' ? p.detail : `${what}: HTTP ${res.status}`}`,
      { status: res.status, issues: Array.isArray(p.errors) ? (p.errors as FieldIssue[]) : [] },
    );
  }
  const schema = contract.responses[res.status];
  if (schema === undefined)
    throw unexpected(`${name}: ${what}`, `HTTP ${res.status} is not an answer it documents`, []);
  if (!json) throw unexpected(`${name}: ${what}`, 'the body is not JSON', []);
  const checked = schema.safeParse(parsed);
  if (!checked.success) {
    const issues = checked.error.issues.map((i) => ({
      path: ['response', ...i.path.map(String)].join('.'),
      message: i.message,
    }));
    throw unexpected(`${name}: ${what}`, issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues);
  }
  return checked.data as SuccessOf<C>;
}

/** An answer the route's contract does not describe: a server of another version, or a bug. */
function unexpected(what: string, why: string, issues: FieldIssue[]): IotdrError {
  return new IotdrError(
    'IOTDR_HTTP_UNEXPECTED_RESPONSE',
    `${what}: the answer does not match the API's schema (${why}); is it the same iotdr version?`,
    { issues },
  );
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

/** One HTTP(S) request with node's own client, so an HTTPS listener is verified against `ca`. */
function send(
  url: string,
  options: { method: string; headers: Record<string, string>; body?: string; ca?: string; timeoutMs: number },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: options.method,
        headers: options.headers,
        signal: AbortSignal.timeout(options.timeoutMs),
        ...(secure && options.ca ? { ca: options.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

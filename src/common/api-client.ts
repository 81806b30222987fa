/**
 * A client of iotdr's HTTP APIs (a region's, control's, command and control's) for the CLI, the
 * fleet and the drill: bearer token, JSON in and out, an HTTPS listener verified against the
 * embedded CA, and a problem+json answer turned into an IotdrError with its code and issues.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { IotdrError } from './errors.js';

/** How long one API call of a CLI command may take, in ms. */
export const CALL_TIMEOUT_MS = 30_000;

/** A region's (or control's) API with a token; a problem+json answer becomes an IotdrError. */
export class Api {
  constructor(
    readonly region: string,
    readonly base: string,
    readonly token: string,
    /** The CA to verify an HTTPS listener against (the embedded CA). */
    readonly ca?: string,
  ) {}

  async call(
    method: string,
    path: string,
    options: { body?: unknown; raw?: { text: string; contentType: string }; timeoutMs?: number } = {},
  ): Promise<unknown> {
    const body = options.raw?.text ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const contentType =
      options.raw?.contentType ?? (options.body === undefined ? undefined : 'application/json');
    let res: { status: number; text: string };
    try {
      res = await send(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(contentType === undefined ? {} : { 'content-type': contentType }),
        },
        ...(body === undefined ? {} : { body }),
        ...(this.ca === undefined ? {} : { ca: this.ca }),
        timeoutMs: options.timeoutMs ?? CALL_TIMEOUT_MS,
      });
    } catch (error) {
      throw new IotdrError(
        'IOTDR_CLI_UNREACHABLE',
        `cannot reach ${this.region} at ${this.base} (${(error as Error).message}): is it running?`,
        { cause: error },
      );
    }
    let parsed: unknown;
    try {
      parsed = res.text.length > 0 ? JSON.parse(res.text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.status < 200 || res.status >= 300) {
      const p = (parsed ?? {}) as {
        code?: string;
        detail?: string;
        errors?: Array<{ path: string; message: string }>;
      };
      throw new IotdrError(
        p.code ?? 'IOTDR_CLI_REQUEST_FAILED',
        `${this.region}: ${p.detail ?? `${method} ${path}: HTTP ${res.status}`}`,
        { status: res.status, issues: p.errors ?? [] },
      );
    }
    return parsed;
  }
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

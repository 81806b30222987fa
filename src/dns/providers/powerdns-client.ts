/** A small client for the PowerDNS Authoritative HTTP API (`/api/v1`), with a timeout per request. */
import { z } from 'zod';
import { ProviderError } from '../errors.js';
import { systemTimers, type Timers } from '../timers.js';

/** Longest piece of an error body quoted in an error message, characters. */
const MAX_QUOTED_BODY = 300;

export const rrsetSchema = z.object({
  name: z.string(),
  type: z.string(),
  ttl: z.number().optional(),
  records: z.array(z.object({ content: z.string(), disabled: z.boolean().optional() })),
});
const zoneSchema = z.object({ name: z.string(), rrsets: z.array(rrsetSchema) });
export type PowerDnsRrset = z.infer<typeof rrsetSchema>;
export type PowerDnsZone = z.infer<typeof zoneSchema>;

export interface RrsetChange {
  readonly name: string;
  readonly type: string;
  readonly ttl?: number;
  readonly changetype: 'REPLACE' | 'DELETE';
  readonly records?: readonly { readonly content: string; readonly disabled: boolean }[];
}

export interface PowerDnsClientOptions {
  readonly url: string;
  readonly serverId: string;
  readonly apiKey: string;
  readonly timeoutMs: number;
  readonly timers?: Timers;
}

export class PowerDnsClient {
  readonly #options: PowerDnsClientOptions;

  constructor(options: PowerDnsClientOptions) {
    this.#options = options;
  }

  /** The zone with its rrsets, or undefined when PowerDNS does not have it. */
  async getZone(zone: string): Promise<PowerDnsZone | undefined> {
    const response = await this.#request('GET', this.#zonePath(zone));
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    const body = await this.#json(response, 'GET zone');
    const parsed = zoneSchema.safeParse(body);
    if (!parsed.success) {
      throw new ProviderError(
        'IOTDR_DNS_PROVIDER_REJECTED',
        'PowerDNS returned a zone in an unexpected shape',
        {
          details: { issues: parsed.error.issues.map((i) => i.message) },
        },
      );
    }
    return parsed.data;
  }

  async createZone(body: Record<string, unknown>): Promise<void> {
    const path = `/api/v1/servers/${encodeURIComponent(this.#options.serverId)}/zones`;
    await this.#expectOk(await this.#request('POST', path, body), 'create zone');
  }

  async patchRrsets(zone: string, rrsets: readonly RrsetChange[]): Promise<void> {
    await this.#expectOk(await this.#request('PATCH', this.#zonePath(zone), { rrsets }), 'update records');
  }

  #zonePath(zone: string): string {
    // Zone ids are the name with its trailing dot; our zones are letters, digits, hyphens and dots only.
    return `/api/v1/servers/${encodeURIComponent(this.#options.serverId)}/zones/${zone}.`;
  }

  async #request(method: string, path: string, body?: unknown): Promise<Response> {
    const timers = this.#options.timers ?? systemTimers;
    const abort = new AbortController();
    const timer = timers.setTimeout(() => abort.abort(), this.#options.timeoutMs);
    const url = new URL(path, this.#options.url);
    try {
      return await fetch(url, {
        method,
        headers: {
          'X-API-Key': this.#options.apiKey,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: abort.signal,
      });
    } catch (error) {
      const what = abort.signal.aborted
        ? `did not answer within ${this.#options.timeoutMs} ms`
        : 'is unreachable';
      throw new ProviderError('IOTDR_DNS_PROVIDER_UNREACHABLE', `PowerDNS API at ${url.origin} ${what}`, {
        cause: error,
        details: { url: url.origin, method },
      });
    } finally {
      timers.clearTimeout(timer);
    }
  }

  async #json(response: Response, what: string): Promise<unknown> {
    await this.#expectOk(response, what, true);
    try {
      return await response.json();
    } catch (error) {
      throw new ProviderError('IOTDR_DNS_PROVIDER_REJECTED', `PowerDNS ${what}: the body is not JSON`, {
        cause: error,
      });
    }
  }

  async #expectOk(response: Response, what: string, keepBody = false): Promise<void> {
    if (response.ok) {
      if (!keepBody) await response.body?.cancel();
      return;
    }
    const text = (await response.text().catch(() => '')).slice(0, MAX_QUOTED_BODY);
    const hint = response.status === 401 ? ' (check the API key)' : '';
    throw new ProviderError(
      'IOTDR_DNS_PROVIDER_REJECTED',
      `PowerDNS ${what} failed with HTTP ${response.status}${hint}: ${text}`,
      { details: { status: response.status, body: text } },
    );
  }
}

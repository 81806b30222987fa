import { readFile } from 'node:fs/promises';
import { IotdrError } from '../common/index.js';
import type { LoadedConfig, RegionConfig } from '../config/index.js';
import { adminTokenPath, apiUrlOf } from '../region.js';

/** How long one API call of a CLI command may take, in ms. */
export const CALL_TIMEOUT_MS = 30_000;

/** A region's API with the admin token; a problem+json answer becomes an IotdrError. */
export class Api {
  constructor(
    readonly region: string,
    readonly base: string,
    readonly token: string,
  ) {}

  async call(
    method: string,
    path: string,
    options: { body?: unknown; timeoutMs?: number } = {},
  ): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? CALL_TIMEOUT_MS),
      });
    } catch (error) {
      throw new IotdrError(
        'IOTDR_CLI_UNREACHABLE',
        `cannot reach ${this.region} at ${this.base}: is the region running?`,
        { cause: error },
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
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

export async function apiOf(loaded: LoadedConfig, region: RegionConfig): Promise<Api> {
  const path = adminTokenPath(loaded.stateDir);
  let token: string;
  try {
    token = (await readFile(path, 'utf8')).trim();
  } catch (error) {
    throw new IotdrError(
      'IOTDR_CLI_NO_ADMIN_TOKEN',
      `cannot read the admin token ${path}: set IOTDR_HOME to the state directory the regions use`,
      { cause: error },
    );
  }
  return new Api(region.name, apiUrlOf(region), token);
}

/** Rows as aligned columns, two spaces apart; the first row is the header. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

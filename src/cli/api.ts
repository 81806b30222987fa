import { readFile } from 'node:fs/promises';
import { IotdrError } from '../common/index.js';
import type { LoadedConfig, RegionConfig } from '../config/index.js';
import { adminTokenPath, apiUrlOf, caCertPath } from '../config/index.js';
import { ApiClient } from '../http/index.js';

/** The admin token of the state directory the regions use. */
export async function adminToken(loaded: LoadedConfig): Promise<string> {
  const path = adminTokenPath(loaded.stateDir);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    throw new IotdrError(
      'IOTDR_CLI_NO_ADMIN_TOKEN',
      `cannot read the admin token ${path}: set IOTDR_HOME to the state directory the regions use`,
      { cause: error },
    );
  }
}

/** The platform's CA (PEM), which the APIs' certificates chain to; undefined before the first start. */
export async function platformCa(loaded: LoadedConfig): Promise<string | undefined> {
  return readFile(caCertPath(loaded.stateDir), 'utf8').catch(() => undefined);
}

/** A region's API with the admin token, its HTTPS verified against the platform's CA. */
export async function apiOf(loaded: LoadedConfig, region: RegionConfig): Promise<ApiClient> {
  return new ApiClient(
    region.name,
    apiUrlOf(loaded.config, region),
    await adminToken(loaded),
    await platformCa(loaded),
  );
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

/** `[#########...........]  45%`: how far a long operation is. */
export function progressBar(done: number, total: number): string {
  const width = 20;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(total === 0 ? 100 : Math.floor((done / total) * 100)).padStart(3)}%`;
}

import { mkdtemp, rm } from 'node:fs/promises';
import type { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { siteAgent } from '../../src/http/index.js';
import { loadOrCreateCa, type SiteId } from '../../src/pki/index.js';
import { type RunningRegion, startRegion } from '../../src/processes/index.js';
import { fetch } from './https.js';

export interface TestRegion {
  region: RunningRegion;
  url: string;
  stateDir: string;
  adminToken: string;
  /** fetch against the region; JSON in, JSON (or problem+json) out. */
  call: Call;
  /** The same against the region's command-and-control listener. */
  cnc: Call;
  close(): Promise<void>;
}

type Call = (
  method: string,
  path: string,
  options?: { token?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string> },
) => Promise<{ status: number; body: any; headers: Headers }>;

function caller(base: string, adminToken: string): Call {
  return async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? adminToken : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (options.rawBody !== undefined) {
      body = options.rawBody;
      headers['content-type'] ??= 'application/json';
    } else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    let parsed: unknown = text;
    if (text.length > 0 && /json/.test(res.headers.get('content-type') ?? '')) parsed = JSON.parse(text);
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

/** Starts one real region (SQLite, HTTP on 127.0.0.1, ephemeral port) in a temporary state dir. */
export async function startTestRegion(
  name = 'us-east',
  extra: Record<string, unknown> = {},
): Promise<TestRegion> {
  const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-test-'));
  const config = parseConfig({
    logging: { level: 'silent' },
    regions: [{ name, priority: 1, address: '127.0.0.1' }],
    analytics: { regionCheck: false },
    ...extra,
  });
  const region = await startRegion({
    config,
    stateDir,
    name,
    logger: createLogger({ level: 'silent' }),
    listen: { host: '127.0.0.1', port: 0 },
  });
  const { readFile } = await import('node:fs/promises');
  const adminToken = (await readFile(join(stateDir, 'secrets', 'admin.token'), 'utf8')).trim();
  const url = region.apiUrl;
  return {
    region,
    url,
    stateDir,
    adminToken,
    call: caller(url, adminToken),
    cnc: caller(region.cncUrl, adminToken),
    async close() {
      await region.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * The agent a site of the platform calls with over mutual TLS: a site certificate for `site` from
 * the CA of `stateDir`, and, when `peer` is given, the check that the server's certificate names it.
 * For tests that play a checker, control or a peer region against real regions.
 */
export async function siteAgentOf(stateDir: string, site: SiteId, peer?: SiteId): Promise<Agent> {
  const ca = await loadOrCreateCa(join(stateDir, 'pki'));
  const issued = await ca.issueSiteCertificate({ site, dnsNames: [], ipAddresses: [] });
  return siteAgent(
    { caPem: ca.certificatePem, certPem: issued.certificatePem, keyPem: issued.privateKeyPem, site },
    peer,
  );
}

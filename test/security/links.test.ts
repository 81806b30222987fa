/**
 * Every link between the platform's processes, over mutual TLS as `iotdr up` runs them (a region,
 * control, and the sites that call them: a peer region, a checker, a name server, analytics). For
 * each link: the site it is for gets in with its certificate; a site of another kind, a caller
 * without a certificate (with or without a token other than admin), and a certificate from another
 * CA are refused; and a checker's certificate reports for its own id only.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, waitUntil } from '../../src/common/index.js';
import { type IotdrConfig, parseConfig } from '../../src/config/index.js';
import { siteAgent, trustingAgent } from '../../src/http/index.js';
import { loadOrCreateCa, type SiteId } from '../../src/pki/index.js';
import {
  type RunningControl,
  type RunningRegion,
  type SiteLinks,
  siteLinks,
  startControl,
  startRegion,
} from '../../src/processes/index.js';
import { freePort } from '../harness/process.js';

interface Answer {
  status: number;
  body: { code?: string; detail?: string } & Record<string, unknown>;
}

function call(
  url: string,
  agent: Agent,
  options: { method?: string; token?: string; body?: unknown } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = request(
      url,
      {
        agent,
        method: options.method ?? 'GET',
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text.length > 0 ? JSON.parse(text) : {} });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('mutual TLS on every link', () => {
  let stateDir: string;
  let config: IotdrConfig;
  let region: RunningRegion;
  let control: RunningControl;
  let adminToken: string;
  const sites: SiteLinks[] = [];
  let person: Agent;
  let forger: Agent;
  const as = async (site: SiteId): Promise<Agent> => {
    const links = await siteLinks(config, stateDir, site, { addresses: [] });
    sites.push(links);
    const agent = links.agentFor();
    if (agent === undefined) throw new Error('links are not mutual TLS');
    return agent;
  };

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'iotdr-links-'));
    config = parseConfig({
      logging: { level: 'silent' },
      // Control asks the region who people's tokens are, at the configured address.
      regions: [
        {
          name: 'us-east',
          priority: 1,
          address: '127.0.0.1',
          api: { port: await freePort() },
          mqtt: { port: 0 },
          cnc: { port: 0 },
        },
      ],
      analytics: { regionCheck: false },
      failover: { checkers: ['control', 'site-b'] },
    });
    const logger = createLogger({ level: 'silent' });
    region = await startRegion({
      config,
      stateDir,
      name: 'us-east',
      logger,
    });
    control = await startControl({
      config,
      stateDir,
      logger,
      listen: { host: '127.0.0.1', port: 0 },
      dnsListen: { host: '127.0.0.1', port: 0 },
    });
    adminToken = (await readFile(join(stateDir, 'secrets', 'admin.token'), 'utf8')).trim();
    const ca = await loadOrCreateCa(join(stateDir, 'pki'));
    person = trustingAgent(ca.certificatePem);
    // A certificate naming region us-west, signed by a CA of the attacker's own.
    const other = await loadOrCreateCa(join(stateDir, 'elsewhere'));
    const forged = await other.issueSiteCertificate({
      site: { kind: 'region', name: 'us-west' },
      dnsNames: [],
      ipAddresses: ['127.0.0.1'],
    });
    forger = siteAgent({
      caPem: ca.certificatePem,
      certPem: forged.certificatePem,
      keyPem: forged.privateKeyPem,
      site: { kind: 'region', name: 'us-west' },
    });
  });

  afterAll(async () => {
    for (const links of sites) links.close();
    person?.destroy();
    forger?.destroy();
    await control?.stop();
    await region?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('serves every API over HTTPS with a site certificate', () => {
    expect(region.apiUrl).toMatch(/^https:\/\//);
    expect(control.controlUrl).toMatch(/^https:\/\//);
  });

  it("region ← region: a peer's change feed is read with a region's certificate only", async () => {
    const url = `${region.apiUrl}/v1/changes?after=0&limit=10`;
    const peer = await call(url, await as({ kind: 'region', name: 'us-west' }));
    expect(peer.status).toBe(200);
    const analytics = await call(url, await as({ kind: 'analytics', name: 'analytics' }));
    expect([analytics.status, analytics.body.code]).toEqual([403, 'IOTDR_AUTH_SITE_FORBIDDEN']);
    expect((await call(url, person)).body.code).toBe('IOTDR_AUTH_REQUIRED');
    expect((await call(url, forger)).status).toBe(401);
    const snapshot = await call(`${region.apiUrl}/v1/snapshot?origin=us-east&limit=10`, forger);
    expect(snapshot.status).toBe(401);
  });

  it("region ← analytics: the event bus is read with analytics' certificate or a person's token", async () => {
    const url = `${region.apiUrl}/v1/events?from=0&limit=1`;
    expect((await call(url, await as({ kind: 'analytics', name: 'analytics' }))).status).toBe(200);
    const dns = await call(url, await as({ kind: 'dns', name: 'ns2' }));
    expect([dns.status, dns.body.code]).toEqual([403, 'IOTDR_AUTH_SITE_FORBIDDEN']);
    expect((await call(url, person)).status).toBe(401);
  });

  it("region ← control: the failover notice takes control's certificate, not another site's", async () => {
    const body = { activeRegion: 'us-east', epoch: 1, at: new Date().toISOString() };
    const url = `${region.apiUrl}/v1/notices/failover`;
    const fromControl = await call(url, await as({ kind: 'control', name: 'control' }), {
      method: 'POST',
      body,
    });
    expect(fromControl.status).toBe(202);
    const fromChecker = await call(url, await as({ kind: 'checker', name: 'site-b' }), {
      method: 'POST',
      body,
    });
    expect([fromChecker.status, fromChecker.body.code]).toEqual([403, 'IOTDR_AUTH_SITE_FORBIDDEN']);
    expect((await call(url, forger, { method: 'POST', body })).status).toBe(401);
  });

  it("control ← checker: a checker's certificate reports its own observations only", async () => {
    const url = `${control.controlUrl}/v1/observations`;
    const observation = (checker: string) => ({
      checker,
      observations: [
        {
          checker,
          region: 'us-east',
          at: Date.now(),
          outcome: 'fail',
          failingComponents: ['broker'],
          failing: [],
          latencyMs: 5,
        },
      ],
    });
    const checker = await as({ kind: 'checker', name: 'site-b' });
    expect((await call(url, checker, { method: 'POST', body: observation('site-b') })).status).toBe(202);
    const posing = await call(url, checker, { method: 'POST', body: observation('control') });
    expect([posing.status, posing.body.code]).toEqual([403, 'IOTDR_FAILOVER_CHECKER_MISMATCH']);
    const fromRegion = await call(url, await as({ kind: 'region', name: 'us-east' }), {
      method: 'POST',
      body: observation('site-b'),
    });
    expect(fromRegion.body.code).toBe('IOTDR_AUTH_SITE_FORBIDDEN');
    // No token stands for a checker over mutual TLS, an operator's neither.
    const operator = await call(`${region.apiUrl}/v1/tokens`, person, {
      method: 'POST',
      token: adminToken,
      body: { name: 'ops', role: 'operator' },
    });
    expect(operator.status).toBe(201);
    const byToken = await call(url, person, {
      method: 'POST',
      token: String(operator.body.token),
      body: observation('site-b'),
    });
    expect([byToken.status, byToken.body.code]).toEqual([403, 'IOTDR_AUTH_SITE_REQUIRED']);
  });

  it('control ← name server: the decision is read with a name server’s certificate', async () => {
    const url = `${control.controlUrl}/v1/failover/decision`;
    const dns = await call(url, await as({ kind: 'dns', name: 'ns2' }));
    // Before the controller's first decision the answer is 503 IOTDR_FAILOVER_NO_DECISION: past the door.
    expect(dns.status === 200 || dns.body.code === 'IOTDR_FAILOVER_NO_DECISION').toBe(true);
    const checker = await call(url, await as({ kind: 'checker', name: 'site-b' }));
    expect([checker.status, checker.body.code]).toEqual([403, 'IOTDR_AUTH_SITE_FORBIDDEN']);
    expect((await call(url, forger)).status).toBe(401);
    expect((await call(url, person)).status).toBe(401);
  });

  it("control knows people's tokens as the regions do, and a deleted token stops there too", async () => {
    const made = await call(`${region.apiUrl}/v1/tokens`, person, {
      method: 'POST',
      token: adminToken,
      body: { name: 'night-shift', role: 'reader' },
    });
    expect(made.status).toBe(201);
    const token = String(made.body.token);
    const state = `${control.controlUrl}/v1/failover/state`;
    expect((await call(state, person, { token })).status).toBe(200);
    // A reader may not switch: control decides by the role the region gave.
    const failover = await call(`${control.controlUrl}/v1/failover/switch`, person, {
      method: 'POST',
      token,
      body: { to: 'us-east', reason: 'test' },
    });
    expect([failover.status, failover.body.code]).toEqual([403, 'IOTDR_AUTH_FORBIDDEN']);
    const info = made.body.info as { tokenId: string };
    const deleted = await call(`${region.apiUrl}/v1/tokens/${info.tokenId}`, person, {
      method: 'DELETE',
      token: adminToken,
    });
    expect(deleted.status).toBe(204);
    // Control trusts an answer for the registry's cache time (2 s) at most.
    await waitUntil(async () => (await call(state, person, { token })).status === 401, {
      timeoutMs: 5000,
      what: 'the deleted token refused at control',
    });
  });

  it('a site refuses a peer whose certificate names another site', async () => {
    const links = await siteLinks(
      config,
      stateDir,
      { kind: 'analytics', name: 'analytics' },
      { addresses: [] },
    );
    sites.push(links);
    // The region's certificate names region us-east: analytics calling it as control is refused.
    const wrong = links.agentFor({ kind: 'control', name: 'control' });
    if (wrong === undefined) throw new Error('links are not mutual TLS');
    await expect(call(`${region.apiUrl}/livez`, wrong)).rejects.toThrow(
      /expected the certificate of control control/,
    );
  });
});

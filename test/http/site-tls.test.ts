/**
 * Mutual TLS between sites, on a real HTTPS server built with buildApi: a caller presenting a site
 * certificate from the platform's CA is that site, allowed only where a route lists its kind; a
 * person's bearer token still works over the same HTTPS; a link token (the replicator's) does not
 * stand for a site; a certificate from another CA, or a device certificate from the same CA, names
 * no site; and a site calling a peer refuses a server whose certificate names another site.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Agent } from 'node:https';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { buildApi, type SiteTls, siteAgent, staticTokens, trustingAgent } from '../../src/http/index.js';
import { type CertificateAuthority, loadOrCreateCa, type SiteId } from '../../src/pki/index.js';

const ADMIN = 'admin-token-0123456789';
const REPLICATOR = 'replicator-token-0123456789';
const READER = 'reader-token-0123456789';

async function siteTls(ca: CertificateAuthority, site: SiteId): Promise<SiteTls> {
  const issued = await ca.issueSiteCertificate({ site, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  return { caPem: ca.certificatePem, certPem: issued.certificatePem, keyPem: issued.privateKeyPem, site };
}

function call(
  url: string,
  agent: Agent,
  token?: string,
): Promise<{ status: number; body: { code?: string; who?: string; site?: unknown } }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('site certificates on the links between processes', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let other: CertificateAuthority;
  let server: SiteTls;
  let app: FastifyInstance;
  let base: string;
  const agents: Agent[] = [];
  const agentOf = (tls: SiteTls, peer?: SiteId) => {
    const agent = siteAgent(tls, peer);
    agents.push(agent);
    return agent;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-site-tls-'));
    ca = await loadOrCreateCa(join(dir, 'pki'));
    other = await loadOrCreateCa(join(dir, 'other-pki'));
    server = await siteTls(ca, { kind: 'region', name: 'us-east' });
    app = await buildApi({
      logger: createLogger({ level: 'silent' }),
      tokens: staticTokens([
        { token: ADMIN, name: 'admin', role: 'admin' },
        { token: REPLICATOR, name: 'replicator', role: 'replicator' },
        { token: READER, name: 'reader', role: 'reader' },
      ]),
      openapi: { title: 'test', description: 'site links' },
      site: server,
      routes: [
        async (a) => {
          a.get('/v1/changes', { config: { sites: ['region'], linkRoles: ['replicator'] } }, async (req) => ({
            who: req.principal?.name,
            site: req.principal?.site,
          }));
          a.get('/v1/events', { config: { sites: ['analytics'], roles: ['reader'] } }, async (req) => ({
            who: req.principal?.name,
          }));
        },
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    base = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(async () => {
    for (const agent of agents) agent.destroy();
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('knows a site by its certificate and lets it call the routes of its kind only', async () => {
    const peer = agentOf(await siteTls(ca, { kind: 'region', name: 'eu-west' }));
    const answer = await call(`${base}/v1/changes`, peer);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ who: 'region eu-west', site: { kind: 'region', name: 'eu-west' } });
    const wrong = await call(`${base}/v1/events`, peer);
    expect(wrong.status).toBe(403);
    expect(wrong.body.code).toBe('IOTDR_AUTH_SITE_FORBIDDEN');

    const analytics = agentOf(await siteTls(ca, { kind: 'analytics', name: 'analytics' }));
    expect((await call(`${base}/v1/events`, analytics)).status).toBe(200);
    expect((await call(`${base}/v1/changes`, analytics)).body.code).toBe('IOTDR_AUTH_SITE_FORBIDDEN');
  });

  it('refuses a link route to a caller without a site certificate, unless it holds an admin token', async () => {
    const person = trustingAgent(ca.certificatePem);
    agents.push(person);
    const none = await call(`${base}/v1/changes`, person);
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('IOTDR_AUTH_REQUIRED');
    // The replicator's token stands for a region only on plain loopback links.
    const replicator = await call(`${base}/v1/changes`, person, REPLICATOR);
    expect(replicator.status).toBe(403);
    expect(replicator.body.code).toBe('IOTDR_AUTH_SITE_REQUIRED');
    expect((await call(`${base}/v1/changes`, person, ADMIN)).status).toBe(200);
    // A person's token keeps working where its role is allowed, over the same HTTPS.
    expect(await call(`${base}/v1/events`, person, READER)).toEqual({ status: 200, body: { who: 'reader' } });
  });

  it('sees no site in a certificate from another CA, nor in a device certificate of the same CA', async () => {
    const foreign = await other.issueSiteCertificate({
      site: { kind: 'region', name: 'eu-west' },
      dnsNames: ['localhost'],
      ipAddresses: [],
    });
    const forger = agentOf({
      caPem: ca.certificatePem,
      certPem: foreign.certificatePem,
      keyPem: foreign.privateKeyPem,
      site: { kind: 'region', name: 'eu-west' },
    });
    const forged = await call(`${base}/v1/changes`, forger);
    expect(forged.status).toBe(401);

    const device = await ca.issueDeviceCertificate({ commonName: 'iotdr region eu-west' });
    const deviceAgent = agentOf({
      caPem: ca.certificatePem,
      certPem: device.certificatePem,
      keyPem: device.privateKeyPem,
      site: { kind: 'region', name: 'eu-west' },
    });
    expect((await call(`${base}/v1/changes`, deviceAgent)).status).toBe(401);
  });

  it('refuses a peer whose certificate names another site than the one called', async () => {
    const tls = await siteTls(ca, { kind: 'region', name: 'eu-west' });
    const right = agentOf(tls, { kind: 'region', name: 'us-east' });
    expect((await call(`${base}/v1/changes`, right)).status).toBe(200);
    const wrong = agentOf(tls, { kind: 'region', name: 'ap-south' });
    await expect(call(`${base}/v1/changes`, wrong)).rejects.toThrow(
      /expected the certificate of region ap-south/,
    );
  });

  it('puts the site in the certificate as one URI and gives it both TLS usages', async () => {
    const { X509Certificate } = await import('node:crypto');
    const cert = new X509Certificate(server.certPem);
    expect(cert.subjectAltName).toContain('URI:urn:iotdr:site:region:us-east');
    expect(cert.subject).toBe('CN=iotdr region us-east');
    expect(cert.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    await expect(
      ca.issueSiteCertificate({
        site: { kind: 'robot' as 'region', name: 'x' },
        dnsNames: ['a'],
        ipAddresses: [],
      }),
    ).rejects.toMatchObject({ code: 'IOTDR_PKI_INVALID_OPTIONS' });
  });
});

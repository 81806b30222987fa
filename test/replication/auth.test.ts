import { readFile } from 'node:fs/promises';
import { type Agent, request } from 'node:https';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { siteAgent } from '../../src/http/index.js';
import { loadOrCreateCa, type SiteId } from '../../src/pki/index.js';
import { type Engine, startCluster } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { siteAgentOf } from '../harness/region.js';
import { onEachEngine, putThings, regionOf } from './support.js';

const FEED_PATHS = [
  '/v1/changes?after=0&wait=5000',
  '/v1/changes?origin=us-east',
  '/v1/snapshot',
  '/v1/snapshot?origin=us-east&limit=10',
];

interface Answer {
  status: number;
  type: string;
  authenticate: string | null;
  text: string;
  ms: number;
}

/** A GET with a bearer token (or none), as a person (fetch) or as a site (its agent). */
async function get(url: string, authorization?: string, agent?: Agent): Promise<Answer> {
  const started = Date.now();
  const headers: Record<string, string> = authorization ? { authorization } : {};
  if (agent === undefined) {
    const res = await fetch(url, { headers });
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      authenticate: res.headers.get('www-authenticate'),
      text: await res.text(),
      ms: Date.now() - started,
    };
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers['content-type'] ?? '',
          authenticate: res.headers['www-authenticate'] ?? null,
          text: Buffer.concat(chunks).toString('utf8'),
          ms: Date.now() - started,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** A refusal: problem+json with the status and code, none of the feed's data, and no long poll. */
function expectRefused(res: Answer, status: number, code: string, what: string): void {
  expect(res.status, what).toBe(status);
  expect(res.type, what).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.text);
  expect(body, what).toMatchObject({ status, code });
  expect(body, what).not.toHaveProperty('changes');
  expect(body, what).not.toHaveProperty('entities');
  expect(body, what).not.toHaveProperty('lastSeq');
  expect(res.text, what).not.toContain('secret-door');
  // The request id is a random UUID: it may hold any four digits.
  expect(JSON.stringify({ ...body, requestId: undefined }), what).not.toContain('4711');
  if (status === 401) expect(res.authenticate, what).toMatch(/^Bearer/);
  // Refused before the long poll starts.
  expect(res.ms, what).toBeLessThan(2500);
}

/**
 * The change feed and the snapshot carry the whole registry. Over mutual TLS (the default) they
 * are for regions, known by their site certificate, and for admins repairing by hand. Any other
 * caller gets a problem+json 401 or 403 with none of the data, at once, even when asking for a
 * long poll: a caller without a certificate and a token of another role, a token of the
 * replicator's role (it does not stand for a region over mutual TLS), a site of another kind, and
 * a region certificate from another CA.
 */
async function feedAndSnapshotAreForRegionSites(engine: Engine): Promise<void> {
  const c = await startCluster(['us-east', 'us-west'], engine);
  const agents: Agent[] = [];
  try {
    const east = regionOf(c, 'us-east');
    expect(east.url).toMatch(/^https:/);
    await putThings(east, ['secret-door'], () => ({ pin: '4711' }));
    const tokenOf = async (role: string) =>
      (await east.call('POST', '/v1/tokens', { name: `${role}-1`, role })).body.token as string;
    const reader = await tokenOf('reader');
    const operator = await tokenOf('operator');
    // A token of the replicator's role made by an admin: over mutual TLS it stands for no site.
    const replicator = await tokenOf('replicator');
    // A well-formed token that was never issued, and the reader's id with a forged secret.
    const unknown = `iotdr_0123456789abcdef_${'A'.repeat(43)}`;
    const forged = `${reader.slice(0, -4)}AAAA`;

    const eastSite: SiteId = { kind: 'region', name: 'us-east' };
    const as = async (site: SiteId) => {
      const agent = await siteAgentOf(c.stateDir, site, eastSite);
      agents.push(agent);
      return agent;
    };
    const region = await as({ kind: 'region', name: 'us-west' });
    const others: Array<[string, Agent]> = [
      ['control', await as({ kind: 'control', name: 'control' })],
      ['checker', await as({ kind: 'checker', name: 'site-b' })],
      ['dns', await as({ kind: 'dns', name: 'ns1' })],
      ['analytics', await as({ kind: 'analytics', name: 'analytics' })],
    ];
    // A certificate naming region us-west, signed by a CA of the caller's own.
    const ca = await loadOrCreateCa(join(c.stateDir, 'pki'));
    const elsewhere = await loadOrCreateCa(join(c.stateDir, 'elsewhere'));
    const outsider = await elsewhere.issueSiteCertificate({
      site: { kind: 'region', name: 'us-west' },
      dnsNames: [],
      ipAddresses: [],
    });
    const foreign = siteAgent(
      {
        caPem: ca.certificatePem,
        certPem: outsider.certificatePem,
        keyPem: outsider.privateKeyPem,
        site: { kind: 'region', name: 'us-west' },
      },
      eastSite,
    );
    agents.push(foreign);

    for (const path of FEED_PATHS) {
      const url = `${east.url}${path}`;
      const tokens: Array<[string | undefined, number, string]> = [
        // No bearer token at all: none, an empty one, another scheme.
        [undefined, 401, 'IOTDR_AUTH_REQUIRED'],
        ['Bearer', 401, 'IOTDR_AUTH_REQUIRED'],
        ['Basic YWRtaW46YWRtaW4=', 401, 'IOTDR_AUTH_REQUIRED'],
        ['Bearer not-a-token', 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        [`Bearer ${unknown}`, 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        [`Bearer ${forged}`, 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        [`Bearer ${reader}`, 403, 'IOTDR_AUTH_FORBIDDEN'],
        [`Bearer ${operator}`, 403, 'IOTDR_AUTH_FORBIDDEN'],
        [`Bearer ${replicator}`, 403, 'IOTDR_AUTH_SITE_REQUIRED'],
      ];
      for (const [authorization, status, code] of tokens)
        expectRefused(
          await get(url, authorization),
          status,
          code,
          `${path} with ${authorization ?? 'no token'}`,
        );
      for (const [kind, agent] of others)
        expectRefused(
          await get(url, undefined, agent),
          403,
          'IOTDR_AUTH_SITE_FORBIDDEN',
          `${path} as ${kind}`,
        );
      // Another CA's certificate is no site: the caller is a person without a token, or with one
      // that does not stand for a region.
      expectRefused(await get(url, undefined, foreign), 401, 'IOTDR_AUTH_REQUIRED', `${path} as an outsider`);
      expectRefused(
        await get(url, `Bearer ${replicator}`, foreign),
        403,
        'IOTDR_AUTH_SITE_REQUIRED',
        `${path} as an outsider with the replicator token`,
      );

      // A region's certificate reads it, and so does an admin's token.
      const now = url.replace('wait=5000', 'wait=0');
      const asRegion = await get(now, undefined, region);
      expect(asRegion.status, path).toBe(200);
      expect(asRegion.text, path).toContain('secret-door');
      const asAdmin = await get(now, `Bearer ${c.adminToken}`);
      expect(asAdmin.status, path).toBe(200);
      expect(asAdmin.text, path).toContain('secret-door');
    }
  } finally {
    for (const agent of agents) agent.destroy();
    await c.close();
  }
}

/**
 * On the plain loopback switch there are no certificates: the replicator token of the state
 * directory stands for a region, and reads the feed and the snapshot; other roles still cannot.
 */
async function plainLinksTakeTheReplicatorToken(engine: Engine): Promise<void> {
  const c = await startCluster(['us-east', 'us-west'], engine, {
    config: { links: { mode: 'plain-loopback' } },
  });
  try {
    const east = regionOf(c, 'us-east');
    expect(east.url).toMatch(/^http:/);
    await putThings(east, ['secret-door'], () => ({ pin: '4711' }));
    const replicator = (await readFile(join(c.stateDir, 'secrets', 'replicator.token'), 'utf8')).trim();
    const reader = (await east.call('POST', '/v1/tokens', { name: 'reader-1', role: 'reader' })).body
      .token as string;
    for (const path of FEED_PATHS) {
      const url = `${east.url}${path}`;
      expectRefused(await get(url), 401, 'IOTDR_AUTH_REQUIRED', `${path} with no token`);
      expectRefused(await get(url, `Bearer ${reader}`), 403, 'IOTDR_AUTH_FORBIDDEN', `${path} as a reader`);
      const allowed = await get(url.replace('wait=5000', 'wait=0'), `Bearer ${replicator}`);
      expect(allowed.status, path).toBe(200);
      expect(allowed.text, path).toContain('secret-door');
    }
  } finally {
    await c.close();
  }
}

onEachEngine('callers of the change feed and the snapshot', (engine) => {
  it('over mutual TLS: a region site reads; other sites, tokens but admin and no certificate get problem+json and no data', async () => {
    await feedAndSnapshotAreForRegionSites(engine());
  }, 60_000);

  it('on plain loopback links: the replicator token reads, a reader token does not', async () => {
    await plainLinksTakeTheReplicatorToken(engine());
  }, 30_000);
});

/**
 * Replication applies from a peer only what that peer may have made. A peer (here a server holding a
 * real site certificate of region us-east, as a compromised region would) that sends a change of
 * another origin, or a token when `replication.tokensFrom` does not list it, has the change refused
 * and dead-lettered with the reason; the region it replicates into also shows it its own site
 * certificate, not a token.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, waitUntil } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { siteOfSocket, siteServerOptions } from '../../src/http/index.js';
import { loadOrCreateCa, type SiteId } from '../../src/pki/index.js';
import { type RunningRegion, startRegion } from '../../src/processes/index.js';
import { generateToken } from '../../src/registry/index.js';

const HLC = (wall: number) => ({ wall, counter: 0 });

function tokenChange(seq: number, origin: string, role: string) {
  const { tokenId } = generateToken();
  return {
    seq,
    id: `00000000-0000-4000-8000-00000000000${seq}`,
    kind: 'token',
    key: tokenId,
    op: 'upsert',
    ref: role,
    after: {
      tokenId,
      name: `planted-${seq}`,
      role,
      secretHash: 'ab'.repeat(32),
      createdAt: new Date().toISOString(),
    },
    version: 1,
    hlc: HLC(Date.now()),
    origin,
    committedAt: Date.now(),
  };
}

describe('replication takes from a peer only what the peer may have made', () => {
  let stateDir: string;
  let peer: Server;
  let west: RunningRegion;
  const callers: Array<SiteId | undefined> = [];
  const changes = [tokenChange(1, 'ap-south', 'admin'), tokenChange(2, 'us-east', 'admin')];

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'iotdr-origin-'));
    const ca = await loadOrCreateCa(join(stateDir, 'pki'));
    const issued = await ca.issueSiteCertificate({
      site: { kind: 'region', name: 'us-east' },
      dnsNames: [],
      ipAddresses: ['127.0.0.1'],
    });
    peer = createServer(
      siteServerOptions({
        caPem: ca.certificatePem,
        certPem: issued.certificatePem,
        keyPem: issued.privateKeyPem,
        site: { kind: 'region', name: 'us-east' },
      }),
      (req, res) => {
        callers.push(siteOfSocket(req.socket));
        const url = new URL(req.url ?? '/', 'https://peer');
        res.setHeader('content-type', 'application/json');
        if (url.pathname === '/v1/snapshot') return res.end(JSON.stringify({ entities: [], lastSeq: 0 }));
        const after = Number(url.searchParams.get('after') ?? '0');
        const page = changes.filter((c) => c.seq > after);
        if (page.length > 0)
          return res.end(JSON.stringify({ changes: page, lastSeq: 2, firstSeq: 1, scannedTo: 2 }));
        // Caught up: answer the long poll a little later, as a peer with nothing new does.
        setTimeout(
          () => res.end(JSON.stringify({ changes: [], lastSeq: 2, firstSeq: 1, scannedTo: 2 })),
          200,
        );
      },
    );
    await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
    const address = peer.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const config = parseConfig({
      logging: { level: 'silent' },
      regions: [
        {
          name: 'us-east',
          priority: 1,
          address: '127.0.0.1',
          api: { port },
          mqtt: { port: 0 },
          cnc: { port: 0 },
        },
        {
          name: 'us-west',
          priority: 2,
          address: '127.0.0.1',
          api: { port: 0 },
          mqtt: { port: 0 },
          cnc: { port: 0 },
        },
        { name: 'ap-south', priority: 3, address: '127.0.0.2' },
      ],
      analytics: { regionCheck: false },
      replication: { waitMs: 500, retryBaseMs: 20, retryMaxMs: 200, tokensFrom: ['us-west'] },
    });
    west = await startRegion({
      config: { ...config, regions: config.regions.filter((r) => r.name !== 'ap-south') },
      stateDir,
      name: 'us-west',
      logger: createLogger({ level: 'silent' }),
      listen: { host: '127.0.0.1', port: 0 },
    });
  });

  afterAll(async () => {
    await west?.stop();
    peer?.closeAllConnections();
    await new Promise((resolve) => peer?.close(resolve));
    await rm(stateDir, { recursive: true, force: true });
  });

  it('dead-letters a change of another origin and a token from a region not allowed to grant', async () => {
    await waitUntil(async () => (await west.replication.target.deadLetters('us-east')).length === 2, {
      timeoutMs: 20_000,
      what: 'both planted changes dead-lettered',
    });
    const letters = await west.replication.target.deadLetters('us-east');
    expect(letters.map((l) => [l.seq, l.code])).toEqual([
      [1, 'IOTDR_REPLICATION_FOREIGN_ORIGIN'],
      [2, 'IOTDR_REPLICATION_GRANT_REFUSED'],
    ]);
    expect(letters[0]?.reason).toMatch(/us-east sent a change of origin 'ap-south'/);
    expect(letters[1]?.reason).toMatch(/us-east may not write tokens here/);
    // Neither token exists in us-west.
    for (const change of changes) {
      expect(await west.service.store.get('token', change.key, { includeDeleted: true })).toBeUndefined();
    }
    // And a retry refuses them again, for the same reasons.
    const first = letters[0];
    if (first === undefined) throw new Error('no letter');
    expect(await west.replication.target.retryDeadLetter('us-east', first.id)).toBe('dead-letter');
  });

  it("pulls with its own site certificate, and checks the peer's", () => {
    expect(callers.length).toBeGreaterThan(0);
    expect(callers.every((c) => c?.kind === 'region' && c.name === 'us-west')).toBe(true);
  });
});

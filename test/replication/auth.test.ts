import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { type Engine, startCluster } from '../harness/cluster.js';
import { onEachEngine, putThings, regionOf } from './support.js';

/**
 * The change feed and the snapshot carry the whole registry: only the replicator role (and admin)
 * may read them. Anyone else gets a problem+json 401 or 403 with none of the data, at once, even
 * when asking for a long poll.
 */
async function feedAndSnapshotNeedTheReplicatorRole(engine: Engine): Promise<void> {
  const c = await startCluster(['us-east', 'us-west'], engine);
  try {
    const east = regionOf(c, 'us-east');
    await putThings(east, ['secret-door'], () => ({ pin: '4711' }));
    const tokenOf = async (role: string) =>
      (await east.call('POST', '/v1/tokens', { name: `${role}-1`, role })).body.token as string;
    const reader = await tokenOf('reader');
    const operator = await tokenOf('operator');
    const replicator = (await readFile(join(c.stateDir, 'secrets', 'replicator.token'), 'utf8')).trim();
    // A well-formed token that was never issued, and the reader's id with a forged secret.
    const unknown = `iotdr_0123456789abcdef_${'A'.repeat(43)}`;
    const forged = `${reader.slice(0, -4)}AAAA`;

    const get = async (path: string, authorization?: string) => {
      const started = Date.now();
      const res = await fetch(`${east.url}${path}`, { headers: authorization ? { authorization } : {} });
      return {
        status: res.status,
        type: res.headers.get('content-type') ?? '',
        authenticate: res.headers.get('www-authenticate'),
        text: await res.text(),
        ms: Date.now() - started,
      };
    };
    for (const path of [
      '/v1/changes?after=0&wait=5000',
      '/v1/changes?origin=us-east',
      '/v1/snapshot',
      '/v1/snapshot?origin=us-east&limit=10',
    ]) {
      const cases: Array<[string | undefined, number, string]> = [
        [undefined, 401, 'IOTDR_AUTH_REQUIRED'],
        ['Bearer', 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        ['Basic YWRtaW46YWRtaW4=', 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        ['Bearer not-a-token', 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        [`Bearer ${unknown}`, 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        [`Bearer ${forged}`, 401, 'IOTDR_AUTH_INVALID_TOKEN'],
        [`Bearer ${reader}`, 403, 'IOTDR_AUTH_FORBIDDEN'],
        [`Bearer ${operator}`, 403, 'IOTDR_AUTH_FORBIDDEN'],
      ];
      for (const [authorization, status, code] of cases) {
        const what = `${path} with ${authorization ?? 'no token'}`;
        const res = await get(path, authorization);
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
      // The replicator token reads it.
      const allowed = await get(path.replace('wait=5000', 'wait=0'), `Bearer ${replicator}`);
      expect(allowed.status, path).toBe(200);
      expect(allowed.text, path).toContain('secret-door');
    }
  } finally {
    await c.close();
  }
}

onEachEngine('callers of the change feed and the snapshot', (engine) => {
  it('without the replicator role get 401 or 403 problem+json and no data', async () => {
    await feedAndSnapshotNeedTheReplicatorRole(engine());
  }, 30_000);
});

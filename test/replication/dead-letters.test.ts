import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { Mutation } from '../../src/registry/index.js';
import { type ClusterRegion, type Engine, eventually, startCluster } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { names, onEachEngine, putThings, regionOf, running } from './support.js';

/** Writes a change straight into the region's store, past the service's checks (a buggy or hostile peer). */
async function writeRaw(region: ClusterRegion, m: Omit<Mutation, 'changeId' | 'origin' | 'at' | 'version'>) {
  const now = Date.now();
  return running(region).service.transaction((tx) =>
    tx.apply({ ...m, changeId: randomUUID(), version: 1, origin: region.name, at: now }),
  );
}

async function deadLetters(region: ClusterRegion, token?: string): Promise<any[]> {
  const res = await region.call('GET', '/v1/replication/dead-letters?peer=us-east', undefined, token);
  expect(res.status).toBe(200);
  return res.body.items;
}

async function westLink(region: ClusterRegion): Promise<any> {
  const status = await region.call('GET', '/v1/replication/status');
  return status.body.links.find((l: { peer: string }) => l.peer === 'us-east');
}

/**
 * us-east emits changes us-west cannot apply: a thing whose attribute is a number, an entity of a
 * kind us-west does not know, and a token with a role us-west does not know. us-west dead-letters
 * them with the reason, applies everything after them, counts them in the status and the metrics;
 * a reader sees what was refused and why but never a document (the token's secretHash), an admin
 * asks for one letter to see it; a retry of a still-invalid one keeps it (one more attempt), a
 * discard removes it.
 */
async function poisonedChange(engine: Engine): Promise<void> {
  const c = await startCluster(['us-east', 'us-west'], engine);
  try {
    const east = regionOf(c, 'us-east');
    const west = regionOf(c, 'us-west');
    // Once us-west copied us-east's (empty) snapshot, the poison comes through the change feed.
    await eventually(async () => (await westLink(west))?.state.type === 'tailing', 'us-west tailing us-east');
    const createdAt = new Date().toISOString();
    const wall = Date.now();
    const badThing = await writeRaw(east, {
      kind: 'thing',
      key: 'poison-1',
      op: 'upsert',
      ref: null,
      doc: {
        thingName: 'poison-1',
        thingTypeName: null,
        attributes: { n: 42 },
        createdAt,
        updatedAt: createdAt,
      },
      hlc: { wall, counter: 0 },
    });
    const unknownKind = await writeRaw(east, {
      kind: 'gizmo',
      key: 'g-1',
      op: 'upsert',
      ref: null,
      doc: { whatever: true },
      hlc: { wall, counter: 1 },
    });
    const secretHash = 'ab'.repeat(32);
    const badToken = await writeRaw(east, {
      kind: 'token',
      key: '0123456789abcdef',
      op: 'upsert',
      ref: 'root',
      doc: { tokenId: '0123456789abcdef', name: 'leaky', role: 'root', secretHash, createdAt },
      hlc: { wall, counter: 2 },
    });
    await putThings(east, names('after-poison', 50));
    // A valid write of the poisoned key itself goes through too.
    expect((await east.call('PUT', '/v1/things/poison-1', { attributes: { n: '42' } })).status).toBe(200);

    await eventually(
      async () => (await west.call('GET', '/v1/things/after-poison-49')).status === 200,
      'later changes in us-west',
    );
    await eventually(
      async () => (await west.call('GET', '/v1/things/poison-1')).body?.attributes?.n === '42',
      'the fixed poison-1 in us-west',
    );
    const reader = (await west.call('POST', '/v1/tokens', { name: 'viewer', role: 'reader' })).body
      .token as string;
    const letters = await deadLetters(west, reader);
    expect(letters.map((l) => l.seq)).toEqual([badThing.seq, unknownKind.seq, badToken.seq]);
    const [thingLetter, kindLetter, tokenLetter] = letters;
    expect(thingLetter).toEqual({
      peer: 'us-east',
      id: expect.any(String),
      seq: badThing.seq,
      kind: 'thing',
      key: 'poison-1',
      op: 'upsert',
      origin: 'us-east',
      code: 'IOTDR_REGISTRY_INVALID_ENTITY',
      reason: expect.any(String),
      at: expect.any(Number),
      attempts: 0,
    });
    expect(thingLetter.code).toBe('IOTDR_REGISTRY_INVALID_ENTITY');
    expect(thingLetter.reason).toMatch(/invalid thing document: attributes\.n/);
    expect(kindLetter).toMatchObject({ peer: 'us-east', attempts: 0, kind: 'gizmo', key: 'g-1' });
    // No component registered a 'gizmo' kind with us-west's registry: refused with its own code.
    expect(kindLetter.code).toBe('IOTDR_REGISTRY_UNKNOWN_KIND');
    expect(kindLetter.reason).toMatch(/unknown kind 'gizmo'/);
    // The list shows no document, to a reader or an admin: not the token's secretHash.
    expect(tokenLetter).toMatchObject({ kind: 'token', key: '0123456789abcdef', op: 'upsert' });
    expect(tokenLetter.reason).toMatch(/invalid token document: role/);
    for (const token of [reader, undefined]) {
      const listed = JSON.stringify(await deadLetters(west, token));
      expect(listed).not.toContain(secretHash);
      expect(listed).not.toContain('leaky');
    }
    // One letter with its change is for admins.
    const onePath = `/v1/replication/dead-letters/us-east/${encodeURIComponent(tokenLetter.id)}`;
    expect((await west.call('GET', onePath, undefined, reader)).status).toBe(403);
    const operator = (await west.call('POST', '/v1/tokens', { name: 'ops', role: 'operator' })).body
      .token as string;
    expect((await west.call('GET', onePath, undefined, operator)).status).toBe(403);
    const whole = await west.call('GET', onePath);
    expect(whole.status).toBe(200);
    expect(whole.body).toMatchObject({
      peer: 'us-east',
      id: tokenLetter.id,
      code: 'IOTDR_REGISTRY_INVALID_ENTITY',
      change: { id: badToken.id, kind: 'token', after: { secretHash } },
    });
    expect((await west.call('GET', '/v1/replication/dead-letters/us-east/999999999')).body.code).toBe(
      'IOTDR_REPLICATION_DEAD_LETTER_NOT_FOUND',
    );
    expect((await west.call('DELETE', onePath)).status).toBe(204);
    // Nothing of them reached us-west's registry or its change log.
    expect(await running(west).service.store.get('gizmo', 'g-1', { includeDeleted: true })).toBeUndefined();
    const westLog = await running(west).service.changes({ after: 0, limit: 10_000, origin: 'us-east' });
    expect(westLog.changes.map((ch) => ch.id)).not.toContain(badThing.id);
    expect(westLog.changes.map((ch) => ch.id)).not.toContain(unknownKind.id);

    expect(await westLink(west)).toMatchObject({ state: { type: 'tailing' }, deadLetters: 2 });
    const metrics = await (await fetch(`${west.url}/metrics`)).text();
    expect(metrics).toMatch(/iotdr_replication_changes_total\{[^}]*outcome="dead-letter"[^}]*\} 3\b/);
    expect(metrics).toMatch(/iotdr_replication_dead_letters\{[^}]*peer="us-east"[^}]*\} 2\b/);

    // A reader sees them but cannot act on them.
    const denied = await west.call(
      'DELETE',
      `/v1/replication/dead-letters/us-east/${kindLetter.id}`,
      undefined,
      reader,
    );
    expect(denied.status).toBe(403);

    // A retry of a change that still cannot apply keeps it, one attempt more.
    const retried = await west.call('POST', `/v1/replication/dead-letters/us-east/${thingLetter.id}/retry`);
    expect(retried).toMatchObject({ status: 200, body: { outcome: 'dead-letter' } });
    const afterRetry = await deadLetters(west);
    expect(afterRetry.map((l) => [l.id, l.attempts])).toEqual([
      [thingLetter.id, 1],
      [kindLetter.id, 0],
    ]);

    // Discarding removes it, from the list and from the status; discarding again is a 404.
    expect((await west.call('DELETE', `/v1/replication/dead-letters/us-east/${kindLetter.id}`)).status).toBe(
      204,
    );
    expect((await deadLetters(west)).map((l) => l.id)).toEqual([thingLetter.id]);
    expect((await westLink(west)).deadLetters).toBe(1);
    const metricsAfter = await (await fetch(`${west.url}/metrics`)).text();
    expect(metricsAfter).toMatch(/iotdr_replication_dead_letters\{[^}]*peer="us-east"[^}]*\} 1\b/);
    const again = await west.call('DELETE', `/v1/replication/dead-letters/us-east/${kindLetter.id}`);
    expect(again).toMatchObject({ status: 404, body: { code: 'IOTDR_REPLICATION_DEAD_LETTER_NOT_FOUND' } });
    expect((await west.call('DELETE', `/v1/replication/dead-letters/us-east/${thingLetter.id}`)).status).toBe(
      204,
    );
    expect(await deadLetters(west)).toEqual([]);

    // The link keeps going after all this.
    await putThings(east, ['after-discard']);
    await eventually(
      async () => (await west.call('GET', '/v1/things/after-discard')).status === 200,
      'after-discard in us-west',
    );
  } finally {
    await c.close();
  }
}

onEachEngine('a change the peer cannot apply', (engine) => {
  it('is dead-lettered with its reason, counted and shown, while the rest goes on; retry and discard', async () => {
    await poisonedChange(engine());
  }, 60_000);
});

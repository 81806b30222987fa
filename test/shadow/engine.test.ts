import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ShadowTopics } from '../../src/broker/shadow/index.js';
import { createLogger } from '../../src/common/index.js';
import { KIND } from '../../src/registry/index.js';
import {
  openService,
  recorder,
  request,
  type ServiceFixture,
  settle,
  storeEngines,
  topic,
} from './support.js';

const NOW_S = Date.parse('2026-03-01T12:00:00Z') / 1000;

for (const engine of storeEngines()) {
  describe(`shadow topics on ${engine}`, () => {
    let f: ServiceFixture;
    let rec: ReturnType<typeof recorder>;
    let shadows: ShadowTopics;
    let n = 0;
    let thing: string;

    beforeAll(async () => {
      f = await openService(engine);
    });
    afterAll(async () => {
      await f?.close();
    });
    beforeEach(async () => {
      thing = `lamp-${++n}`;
      await f.service.putThing(thing, {});
      rec = recorder();
      shadows = new ShadowTopics({ service: f.service, publish: rec.publish });
      shadows.start();
      await settle();
      rec.take();
    });
    afterEach(async () => {
      await shadows.stop();
    });

    const send = (op: string, payload: unknown = '') => shadows.handle(request(topic(thing, op), payload));

    it('creates a shadow on update: accepted, then delta, then documents, each once', async () => {
      await send('update', { state: { desired: { color: 'red', level: 3 } }, clientToken: 'c-1' });
      await settle();
      expect(rec.messages.map((m) => m.topic)).toEqual([
        topic(thing, 'update/accepted'),
        topic(thing, 'update/delta'),
        topic(thing, 'update/documents'),
      ]);
      const [accepted, delta, documents] = rec.messages.map((m) => m.payload);
      expect(accepted).toEqual({
        state: { desired: { color: 'red', level: 3 } },
        metadata: { desired: { color: { timestamp: NOW_S }, level: { timestamp: NOW_S } } },
        version: 1,
        timestamp: NOW_S,
        clientToken: 'c-1',
      });
      expect(delta).toEqual({
        state: { color: 'red', level: 3 },
        metadata: { color: { timestamp: NOW_S }, level: { timestamp: NOW_S } },
        version: 1,
        timestamp: NOW_S,
        clientToken: 'c-1',
      });
      expect(documents).toMatchObject({
        previous: null,
        current: { state: { desired: { color: 'red', level: 3 } }, version: 1 },
        timestamp: NOW_S,
        clientToken: 'c-1',
      });
      expect(rec.messages.every((m) => m.qos === 1 && m.retain === false)).toBe(true);
    });

    it('answers get with the state, its delta, metadata and version', async () => {
      await send('update', { state: { desired: { color: 'red', mode: 'eco' } } });
      f.clock.set(Date.parse('2026-03-01T12:00:10Z'));
      await send('update', { state: { reported: { color: 'red', mode: 'boost' } } });
      rec.take();
      await send('get', { clientToken: 'g-1' });
      expect(rec.messages).toHaveLength(1);
      expect(rec.messages[0]?.topic).toBe(topic(thing, 'get/accepted'));
      expect(rec.messages[0]?.payload).toEqual({
        state: {
          desired: { color: 'red', mode: 'eco' },
          reported: { color: 'red', mode: 'boost' },
          delta: { mode: 'eco' },
        },
        metadata: {
          desired: { color: { timestamp: NOW_S }, mode: { timestamp: NOW_S } },
          reported: { color: { timestamp: NOW_S + 10 }, mode: { timestamp: NOW_S + 10 } },
        },
        version: 2,
        timestamp: NOW_S + 10,
        clientToken: 'g-1',
      });
      f.clock.set(NOW_S * 1000);
      // An empty message works as well.
      await send('get');
      expect(rec.on('get/accepted')[1]?.payload.version).toBe(2);
    });

    it('compares nested objects key by key and arrays as a whole', async () => {
      await send('update', {
        state: {
          reported: { light: { color: 'red', level: 3 }, slots: [1, 2], tags: { a: [1, { b: 2 }] } },
        },
      });
      rec.take();
      await send('update', {
        state: { desired: { light: { color: 'red', level: 5 }, slots: [1, 2], tags: { a: [1, { b: 3 }] } } },
      });
      const delta = rec.on('update/delta');
      expect(delta).toHaveLength(1);
      expect(delta[0]?.payload.state).toEqual({ light: { level: 5 }, tags: { a: [1, { b: 3 }] } });
      // Keys that objects inherit are plain keys here.
      await send('update', { state: { desired: { constructor: 1, toString: { a: 1 } } } });
      expect(rec.on('update/delta')[1]?.payload.state).toEqual({
        light: { level: 5 },
        tags: { a: [1, { b: 3 }] },
        constructor: 1,
        toString: { a: 1 },
      });
      expect(delta[0]?.payload.metadata).toEqual({
        light: { level: { timestamp: NOW_S } },
        tags: { a: [{ timestamp: NOW_S }, { b: { timestamp: NOW_S } }] },
      });
    });

    it('announces a delta only when it changes, and none once reported matches', async () => {
      await send('update', { state: { desired: { mode: 'eco' } } });
      expect(rec.on('update/delta')).toHaveLength(1);
      // A report that leaves the same request pending says nothing new on delta.
      await send('update', { state: { reported: { battery: 80 } } });
      expect(rec.on('update/delta')).toHaveLength(1);
      expect(rec.on('update/documents')).toHaveLength(2);
      await send('update', { state: { reported: { mode: 'eco' } } });
      expect(rec.on('update/delta')).toHaveLength(1);
      await send('get');
      expect(rec.on('get/accepted')[0]?.payload.state.delta).toBeUndefined();
      const docs = rec.on('update/documents');
      expect(docs[2]?.payload.previous).toMatchObject({ version: 2, state: { reported: { battery: 80 } } });
      expect(docs[2]?.payload.current).toMatchObject({
        version: 3,
        state: { reported: { battery: 80, mode: 'eco' } },
      });
    });

    it('removes a key with null, a section with a null section, and keeps the rest', async () => {
      await send('update', { state: { desired: { a: 1, b: { c: 2, d: 3 } }, reported: { a: 1, x: true } } });
      await send('update', { state: { desired: { b: { c: null } }, reported: { x: null } } });
      const accepted = rec.on('update/accepted')[1]?.payload;
      expect(accepted.state).toEqual({ desired: { b: { c: null } }, reported: { x: null } });
      expect(accepted.metadata).toEqual({
        desired: { b: { c: { timestamp: NOW_S } } },
        reported: { x: { timestamp: NOW_S } },
      });
      let shadow = await f.service.getShadow(thing);
      expect(shadow.state).toEqual({
        desired: { a: 1, b: { d: 3 } },
        reported: { a: 1 },
        delta: { b: { d: 3 } },
      });
      expect(shadow.metadata.desired).toEqual({ a: { timestamp: NOW_S }, b: { d: { timestamp: NOW_S } } });
      await send('update', { state: { desired: null } });
      shadow = await f.service.getShadow(thing);
      expect(shadow.state).toEqual({ reported: { a: 1 } });
      expect(shadow.metadata).toEqual({ reported: { a: { timestamp: NOW_S } } });
      expect(shadow.version).toBe(3);
      // A value turned into an object takes the object's metadata, not a mix with the old leaf's.
      f.clock.set(Date.parse('2026-03-01T12:01:00Z'));
      await send('update', { state: { reported: { a: { on: true } } } });
      shadow = await f.service.getShadow(thing);
      expect(shadow.metadata).toEqual({ reported: { a: { on: { timestamp: NOW_S + 60 } } } });
      f.clock.set(NOW_S * 1000);
    });

    it('rejects a version conflict with 409 and changes nothing', async () => {
      await send('update', { state: { reported: { on: true } } });
      await send('update', { state: { reported: { on: false } }, version: 1 });
      const seq = await f.store.lastSeq();
      rec.take();
      await send('update', { state: { reported: { on: true } }, version: 1, clientToken: 'stale' });
      await settle();
      expect(rec.messages).toHaveLength(1);
      expect(rec.messages[0]?.topic).toBe(topic(thing, 'update/rejected'));
      expect(rec.messages[0]?.payload).toEqual({
        code: 409,
        message: 'Version conflict',
        timestamp: NOW_S,
        clientToken: 'stale',
        errorCode: 'IOTDR_SHADOW_VERSION_CONFLICT',
      });
      expect(await f.store.lastSeq()).toBe(seq);
      expect((await f.service.getShadow(thing)).state.reported).toEqual({ on: false });
    });

    it('rejects a state past 8 KB with 413, whether in one request or after merging', async () => {
      const seq = await f.store.lastSeq();
      await send('update', { state: { reported: { blob: 'x'.repeat(9000) } } });
      await send('update', { state: { reported: { blob: 'x'.repeat(20_000) } } });
      expect(rec.on('update/rejected').map((m) => m.payload.code)).toEqual([413, 413]);
      expect(rec.on('update/rejected')[0]?.payload.message).toBe(
        'The payload exceeds the maximum size allowed',
      );
      expect(await f.store.lastSeq()).toBe(seq);
      await send('update', { state: { reported: { a: 'x'.repeat(5000) } } });
      await send('update', { state: { desired: { b: 'y'.repeat(5000) } } });
      expect(rec.on('update/accepted')).toHaveLength(1);
      expect(rec.on('update/rejected').map((m) => m.payload.errorCode)).toEqual([
        'IOTDR_SHADOW_TOO_LARGE',
        'IOTDR_SHADOW_TOO_LARGE',
        'IOTDR_SHADOW_TOO_LARGE',
      ]);
      expect((await f.service.getShadow(thing)).version).toBe(1);
    });

    it('rejects malformed requests with 400 and a reason, changing nothing', async () => {
      const seq = await f.store.lastSeq();
      const deep = { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } };
      const cases: Array<[unknown, string]> = [
        ['{"state": {"desired": ', 'Invalid JSON'],
        [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'Unsupported document encoding; supported encoding is UTF-8'],
        ['', 'Missing required node: state'],
        [[1, 2], 'The request must be a JSON object'],
        [{ clientToken: 'x' }, 'Missing required node: state'],
        [{ state: 5 }, 'State node must be an object'],
        [{ state: { desired: [1] } }, 'Desired node must be an object'],
        [{ state: { reported: 'on' } }, 'Reported node must be an object'],
        [{ state: { delta: { a: 1 } } }, "State contains an invalid node: 'delta'"],
        [{ state: {} }, 'State contains neither desired nor reported'],
        [{ state: { desired: deep } }, 'JSON contains too many levels of nesting; maximum is 6'],
        [{ state: { desired: { a: 1 } }, version: -1 }, 'Invalid version: a non-negative integer'],
        [{ state: { desired: { a: 1 } }, version: 'one' }, 'Invalid version: a non-negative integer'],
        [
          { state: { desired: { a: 1 } }, clientToken: 'x'.repeat(65) },
          'Invalid clientToken: a string of 1 to 64 bytes',
        ],
        [
          { state: { desired: { a: 1 } }, extra: true },
          "Unknown field: 'extra'; allowed: state, version, clientToken",
        ],
        ['{"state": {"desired": {"__proto__": {"polluted": true}}}}', 'Invalid JSON'],
        [{ state: { desired: { a: 'nul\u0000' } } }, 'state.desired.a contains a NUL character'],
      ];
      for (const [payload] of cases) await send('update', payload);
      const rejected = rec.on('update/rejected');
      expect(rejected.map((m) => m.payload.message)).toEqual(cases.map(([, message]) => message));
      expect(rejected.every((m) => m.payload.code === 400)).toBe(true);
      expect(rec.on('update/accepted')).toHaveLength(0);
      expect(await f.store.lastSeq()).toBe(seq);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      // Six levels are allowed.
      await send('update', { state: { desired: { a: { b: { c: { d: { e: { f: 1 } } } } } } } });
      expect(rec.on('update/accepted')).toHaveLength(1);
    });

    it('answers 404 for a thing that does not exist, and for a shadow that does not', async () => {
      await shadows.handle(request(topic('no-such-thing', 'update'), { state: { desired: { a: 1 } } }));
      await send('get', { clientToken: 'q' });
      await send('delete');
      expect(rec.messages.map((m) => [m.topic, m.payload.code, m.payload.message])).toEqual([
        [topic('no-such-thing', 'update/rejected'), 404, "No thing exists with name: 'no-such-thing'"],
        [topic(thing, 'get/rejected'), 404, `No shadow exists with name: '${thing}'`],
        [topic(thing, 'delete/rejected'), 404, `No shadow exists with name: '${thing}'`],
      ]);
      expect(rec.messages[1]?.payload.clientToken).toBe('q');
      await shadows.handle(request(topic('bad.name', 'get')));
      expect(rec.messages[3]?.payload).toMatchObject({ code: 400, errorCode: 'IOTDR_SHADOW_INVALID' });
    });

    it('deletes: accepted once with version and clientToken, then get is 404, and the version continues', async () => {
      await send('update', { state: { reported: { on: true } } });
      await send('update', { state: { reported: { on: false } } });
      rec.take();
      await send('delete', { version: 1 });
      expect(rec.on('delete/rejected')[0]?.payload).toMatchObject({ code: 409, message: 'Version conflict' });
      await send('delete', { version: 2, clientToken: 'del-1' });
      await settle();
      expect(rec.on('delete/accepted').map((m) => m.payload)).toEqual([
        { version: 2, timestamp: NOW_S, clientToken: 'del-1' },
      ]);
      await send('get');
      expect(rec.on('get/rejected')[0]?.payload).toMatchObject({
        code: 404,
        errorCode: 'IOTDR_SHADOW_NOT_FOUND',
      });
      await send('update', { state: { reported: { on: true } } });
      const accepted = rec.on('update/accepted')[0]?.payload;
      expect(accepted.version).toBeGreaterThan(2);
      expect(rec.on('update/documents')[0]?.payload.previous).toBeNull();
    });

    it('announces changes made through the service (HTTP) without an accepted reply', async () => {
      await f.service.updateShadow(thing, { state: { desired: { fan: 'high' } }, clientToken: 'api-1' });
      await rec.waitFor('update/documents');
      await settle();
      expect(rec.messages.map((m) => m.topic)).toEqual([
        topic(thing, 'update/delta'),
        topic(thing, 'update/documents'),
      ]);
      expect(rec.messages[0]?.payload).toMatchObject({
        state: { fan: 'high' },
        version: 1,
        clientToken: 'api-1',
      });
      await f.service.deleteShadow(thing);
      const deleted = await rec.waitFor('delete/accepted');
      expect(deleted[0]?.payload).toEqual({ version: 1, timestamp: NOW_S });
    });

    it('ignores topics other than the three request topics', async () => {
      for (const t of [
        topic(thing, 'update/accepted'),
        topic(thing, 'update/delta'),
        topic(thing, 'get/rejected'),
        `$iotdr/things/${thing}/shadow/name/x/update`,
        `devices/${thing}/shadow/update`,
        `$aws/things/${thing}/shadow/update`,
      ]) {
        await shadows.handle(request(t, { state: { desired: { a: 1 } } }));
      }
      await settle();
      expect(rec.messages).toEqual([]);
      await expect(f.service.getShadow(thing)).rejects.toMatchObject({ code: 'IOTDR_SHADOW_NOT_FOUND' });
    });

    it('serves the requests of one thing in arrival order', async () => {
      await Promise.all(
        Array.from({ length: 15 }, (_, i) => send('update', { state: { reported: { i } }, version: i })),
      );
      expect(rec.on('update/accepted').map((m) => m.payload.version)).toEqual(
        Array.from({ length: 15 }, (_, i) => i + 1),
      );
      expect(rec.on('update/rejected')).toHaveLength(0);
    });

    it('announces nothing once stopped', async () => {
      await shadows.stop();
      await f.service.updateShadow(thing, { state: { desired: { a: 1 } } });
      await settle();
      expect(rec.messages).toEqual([]);
    });

    it('accepts a stored shadow as a replicated document, and refuses broken ones', async () => {
      await f.service.updateShadow(thing, { state: { desired: { a: [1, { b: 2 }] }, reported: { a: 0 } } });
      await f.service.updateShadow(thing, { state: { reported: { a: 1 } }, clientToken: 'r' });
      const record = await f.store.get(KIND.shadow, thing);
      const doc = record?.doc as Record<string, any>;
      const entityProblem = (kind: string, key: string, ref: string | null, doc: unknown) =>
        f.service.kinds.problem(kind, key, ref, doc)?.reason;
      expect(entityProblem(KIND.shadow, thing, null, doc)).toBeUndefined();
      expect(entityProblem(KIND.shadow, thing, null, null)).toBeUndefined();
      expect(entityProblem(KIND.shadow, 'other', null, doc)).toMatch(/does not match/);
      expect(entityProblem(KIND.shadow, 'bad name', null, null)).toMatch(/not a valid shadow key/);
      const broken: Array<[Record<string, any>, RegExp]> = [
        [{ ...doc, state: { desired: 'x' } }, /state\.desired/],
        [{ ...doc, extra: 1 }, /extra|unrecognized/i],
        [
          { ...doc, state: { reported: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } } },
          /levels of nesting/,
        ],
        [{ ...doc, state: { reported: { blob: 'x'.repeat(9000) } } }, /at most 8192/],
        [{ ...doc, state: JSON.parse('{"reported": {"__proto__": {"x": 1}}}') }, /invalid key/],
        [{ ...doc, previous: { ...doc.previous, version: 0 } }, /previous/],
        [{ ...doc, clientToken: '' }, /clientToken/],
      ];
      for (const [bad, reason] of broken)
        expect(entityProblem(KIND.shadow, thing, null, bad)).toMatch(reason);
    });
  });
}

describe('shadow topics when the registry fails', () => {
  it('answers 500 on the rejected topic and logs the cause', async () => {
    const f = await openService('sqlite');
    const rec = recorder();
    const lines: string[] = [];
    const logger = createLogger({
      level: 'error',
      destination: { write: (line: string) => void lines.push(line) },
    });
    const shadows = new ShadowTopics({ service: f.service, publish: rec.publish, logger });
    await f.service.putThing('t-1', {});
    await f.close();
    await shadows.handle(
      request(topic('t-1', 'update'), { state: { reported: { a: 1 } }, clientToken: 'z' }),
    );
    expect(rec.messages).toEqual([
      {
        topic: topic('t-1', 'update/rejected'),
        payload: {
          code: 500,
          message: 'Internal service failure',
          timestamp: NOW_S,
          clientToken: 'z',
          errorCode: 'IOTDR_SHADOW_INTERNAL',
        },
        qos: 1,
        retain: false,
      },
    ]);
    expect(lines.some((l) => l.includes('shadow request failed'))).toBe(true);
    await shadows.stop();
  });
});

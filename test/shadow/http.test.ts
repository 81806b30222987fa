import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShadowTopics, shadowRoutes } from '../../src/broker/shadow/index.js';
import { createLogger } from '../../src/common/index.js';
import { buildRegistryApi } from '../../src/registry/index.js';
import { fetch } from '../harness/https.js';
import { openService, recorder, type ServiceFixture, topic } from './support.js';

let f: ServiceFixture;
let app: FastifyInstance;
let url: string;
const tokens: Record<string, string> = {};
const rec = recorder();
let shadows: ShadowTopics;

async function call(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string } = {},
) {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? tokens.operator}` };
  let body: string | undefined;
  if (options.raw !== undefined || options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = options.raw ?? JSON.stringify(options.body);
  }
  const res = await fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: text.length > 0 ? JSON.parse(text) : undefined,
  };
}

function expectProblem(res: Awaited<ReturnType<typeof call>>, status: number, code: string) {
  expect(res.type).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code });
  expect(res.status).toBe(status);
}

beforeAll(async () => {
  f = await openService('sqlite');
  for (const role of ['reader', 'operator'] as const) {
    tokens[role] = (await f.service.createToken(`${role}-1`, role)).token;
  }
  await f.service.putThing('pump-1', {});
  shadows = new ShadowTopics({ service: f.service, publish: rec.publish });
  shadows.start();
  app = await buildRegistryApi({
    service: f.service,
    logger: createLogger({ level: 'silent' }),
    routes: [shadowRoutes(f.service)],
  });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await shadows?.stop();
  await app?.close();
  await f?.close();
});

describe('shadow HTTP routes', () => {
  it('updates, reads and deletes a shadow, announcing the changes on MQTT', async () => {
    const updated = await call('POST', '/v1/things/pump-1/shadow', {
      body: { state: { desired: { speed: 3 } }, clientToken: 'http-1' },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      state: { desired: { speed: 3 } },
      version: 1,
      clientToken: 'http-1',
    });
    const delta = await rec.waitFor('update/delta');
    expect(delta[0]).toMatchObject({
      topic: topic('pump-1', 'update/delta'),
      payload: { state: { speed: 3 } },
    });
    expect(rec.on('update/accepted')).toHaveLength(0);

    const read = await call('GET', '/v1/things/pump-1/shadow', { token: tokens.reader });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ state: { desired: { speed: 3 }, delta: { speed: 3 } }, version: 1 });
    expect(read.body.metadata.desired.speed.timestamp).toBeTypeOf('number');

    const deleted = await call('DELETE', '/v1/things/pump-1/shadow');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ version: 1 });
    await rec.waitFor('delete/accepted');
    expectProblem(await call('GET', '/v1/things/pump-1/shadow'), 404, 'IOTDR_SHADOW_NOT_FOUND');
    expectProblem(await call('DELETE', '/v1/things/pump-1/shadow'), 404, 'IOTDR_SHADOW_NOT_FOUND');
  });

  it('lets a reader read and nothing more', async () => {
    const seq = await f.store.lastSeq();
    const res = await call('POST', '/v1/things/pump-1/shadow', {
      token: tokens.reader,
      body: { state: { desired: { speed: 1 } } },
    });
    expectProblem(res, 403, 'IOTDR_AUTH_FORBIDDEN');
    expectProblem(
      await call('DELETE', '/v1/things/pump-1/shadow', { token: tokens.reader }),
      403,
      'IOTDR_AUTH_FORBIDDEN',
    );
    expectProblem(
      await call('GET', '/v1/things/pump-1/shadow', { token: 'nope' }),
      401,
      'IOTDR_AUTH_INVALID_TOKEN',
    );
    expect(await f.store.lastSeq()).toBe(seq);
  });

  it('answers bad requests with problem+json and stable codes, changing nothing', async () => {
    await call('POST', '/v1/things/pump-1/shadow', { body: { state: { reported: { speed: 2 } } } });
    const seq = await f.store.lastSeq();
    const path = '/v1/things/pump-1/shadow';
    expectProblem(
      await call('POST', path, { body: { state: { reported: 7 } } }),
      400,
      'IOTDR_SHADOW_INVALID',
    );
    expectProblem(await call('POST', path, {}), 400, 'IOTDR_SHADOW_INVALID');
    expectProblem(await call('POST', path, { raw: '{"state":' }), 400, 'IOTDR_HTTP_MALFORMED_BODY');
    const conflict = await call('POST', path, { body: { state: { reported: { speed: 9 } }, version: 99 } });
    expectProblem(conflict, 409, 'IOTDR_SHADOW_VERSION_CONFLICT');
    // Version 1 was deleted (the delete took 2): the new shadow continues at 3.
    expect(conflict.body).toMatchObject({ expectedVersion: 99, actualVersion: 3 });
    const large = await call('POST', path, { body: { state: { reported: { blob: 'x'.repeat(9000) } } } });
    expectProblem(large, 413, 'IOTDR_SHADOW_TOO_LARGE');
    expectProblem(
      await call('POST', '/v1/things/ghost/shadow', { body: { state: { desired: { a: 1 } } } }),
      404,
      'IOTDR_SHADOW_THING_NOT_FOUND',
    );
    expectProblem(await call('GET', '/v1/things/bad%20name/shadow'), 400, 'IOTDR_VALIDATION_FAILED');
    expectProblem(await call('DELETE', path, { body: { version: 1 } }), 409, 'IOTDR_SHADOW_VERSION_CONFLICT');
    expect(await f.store.lastSeq()).toBe(seq);
    expect((await call('GET', path)).body.state).toEqual({ reported: { speed: 2 } });
  });

  it('documents the routes in /openapi.json', async () => {
    const res = await call('GET', '/openapi.json');
    expect(Object.keys(res.body.paths)).toContain('/v1/things/{name}/shadow');
  });
});

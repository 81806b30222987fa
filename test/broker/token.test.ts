import type { FastifyInstance } from 'fastify';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerRoutes, DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { buildRegistryApi, type ChangeRecord } from '../../src/registry/index.js';
import {
  closed,
  connect,
  endAll,
  refusal,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
} from './support.js';

describe('broker: token listener', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let api: FastifyInstance;
  let operator: string;
  let reader: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry, { tokenListener: { port: 0 } });
    api = await buildRegistryApi({
      service: registry.service,
      logger: createLogger({ level: 'silent' }),
      routes: [brokerRoutes(broker.broker)],
    });
    operator = (await registry.service.createToken('ops', 'operator')).token;
    reader = (await registry.service.createToken('viewer', 'reader')).token;
    await registry.service.putPolicy('device', { policyDocument: DEVICE_POLICY_TEMPLATE() as never });
  });
  afterAll(async () => {
    await endAll(clients);
    await api?.close();
    await broker?.close();
    await registry?.close();
  });

  function call(method: 'POST' | 'DELETE' | 'GET', url: string, token: string, payload?: unknown) {
    return api.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
  }

  async function issue(thing: string, policyNames = ['device']): Promise<string> {
    const res = await call('POST', `/v1/things/${thing}/token`, operator, { policyNames });
    expect(res.statusCode).toBe(201);
    const body = res.json() as { token: string; info: { policyNames: string[] } };
    expect(body.info.policyNames).toEqual(policyNames);
    return body.token;
  }

  function tokenPort(): number {
    const port = broker.addresses.token?.port;
    if (port === undefined) throw new Error('no token listener');
    return port;
  }

  async function online(thing: string, password: string, clientId = thing): Promise<MqttClient> {
    const client = await connect({
      port: tokenPort(),
      ca: registry.ca.certificatePem,
      clientId,
      username: thing,
      password,
    });
    clients.push(client);
    return client;
  }

  it('is off by default and on when configured', async () => {
    const other = await startBroker(registry);
    expect(other.addresses.token).toBeUndefined();
    await other.close();
    expect(tokenPort()).toBeGreaterThan(0);
  });

  it('validates the token API: role, existing thing and policies, body', async () => {
    await registry.service.putThing('tok-api', {});
    expect(
      (await call('POST', '/v1/things/tok-api/token', reader, { policyNames: ['device'] })).statusCode,
    ).toBe(403);
    const missingThing = await call('POST', '/v1/things/nope/token', operator, { policyNames: ['device'] });
    expect(missingThing.statusCode).toBe(404);
    const missingPolicy = await call('POST', '/v1/things/tok-api/token', operator, { policyNames: ['nope'] });
    expect(missingPolicy.statusCode).toBe(404);
    expect(missingPolicy.json().code).toBe('IOTDR_REGISTRY_NOT_FOUND');
    const bad = await call('POST', '/v1/things/tok-api/token', operator, { policyNames: [], extra: 1 });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    await issue('tok-api');
    const info = await call('GET', '/v1/things/tok-api/token', reader);
    expect(info.json()).toMatchObject({ thingName: 'tok-api', policyNames: ['device'] });
    expect(JSON.stringify(info.json())).not.toMatch(/secretHash/);
    expect((await call('DELETE', '/v1/things/tok-api/token', operator)).statusCode).toBe(204);
    expect((await call('DELETE', '/v1/things/tok-api/token', operator)).statusCode).toBe(404);
  });

  it('accepts thing name + token and applies the listed policies with that thing name', async () => {
    await registry.service.putThing('tok-1', {});
    const token = await issue('tok-1');
    const client = await online('tok-1', token);
    expect(await subscribe(client, 'devices/tok-1/#')).toEqual([1]);
    expect(await subscribe(client, 'devices/tok-2/#')).toEqual([128]);
    await client.publishAsync('devices/tok-1/telemetry', 'x', { qos: 1 });
    expect(broker.broker.connections().find((c) => c.clientId === 'tok-1')).toMatchObject({
      thing: 'tok-1',
      auth: 'token',
    });
    const gone = closed(client);
    client.publish('devices/tok-2/telemetry', 'x', { qos: 1 });
    await gone;
  });

  it('refuses a wrong password, an unknown thing and a foreign client id', async () => {
    await registry.service.putThing('tok-3', {});
    const token = await issue('tok-3');
    const port = tokenPort();
    const ca = registry.ca.certificatePem;
    const other = `iotdrdev_${'A'.repeat(43)}`;
    expect(await refusal(connect({ port, ca, clientId: 'tok-3', username: 'tok-3', password: other }))).toBe(
      4,
    );
    expect(await refusal(connect({ port, ca, clientId: 'tok-3', username: 'tok-3' }))).toBe(4);
    expect(await refusal(connect({ port, ca, clientId: 'x', username: 'ghost', password: token }))).toBe(4);
    expect(await refusal(connect({ port, ca, clientId: 'x', username: 'tok-3', password: token }))).toBe(5);
    expect(broker.logs.refusals('bad_credentials').length).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(broker.logs.lines)).not.toContain(token);
  });

  it('closes live sessions when the token is replaced or deleted, or the thing is deleted', async () => {
    await registry.service.putThing('tok-4', {});
    const first = await issue('tok-4');
    const a = await online('tok-4', first);
    const goneA = closed(a);
    const second = await issue('tok-4');
    await goneA;
    expect(
      await refusal(
        connect({
          port: tokenPort(),
          ca: registry.ca.certificatePem,
          clientId: 'tok-4',
          username: 'tok-4',
          password: first,
        }),
      ),
    ).toBe(4);

    const b = await online('tok-4', second);
    const goneB = closed(b);
    expect((await call('DELETE', '/v1/things/tok-4/token', operator)).statusCode).toBe(204);
    await goneB;

    const third = await issue('tok-4');
    const c = await online('tok-4', third);
    const goneC = closed(c);
    await registry.service.deleteThing('tok-4', { force: true });
    await goneC;
    // The token went with its thing.
    expect(await registry.service.store.get('device-token', 'tok-4')).toBeUndefined();
    // Re-creating the thing does not revive the old token.
    await registry.service.putThing('tok-4', {});
    expect(
      await refusal(
        connect({
          port: tokenPort(),
          ca: registry.ca.certificatePem,
          clientId: 'tok-4',
          username: 'tok-4',
          password: third,
        }),
      ),
    ).toBe(4);
  });

  it('stores the token as a replicable registry entity holding only its hash', async () => {
    await registry.service.putThing('tok-6', {});
    const changes: ChangeRecord[] = [];
    const off = registry.service.onCommit((c) => changes.push(...c));
    const token = await issue('tok-6');
    await call('DELETE', '/v1/things/tok-6/token', operator);
    off();
    const [upsert, removal] = changes.filter((c) => c.kind === 'device-token');
    expect(upsert).toMatchObject({ key: 'tok-6', op: 'upsert', ref: null });
    expect(JSON.stringify(upsert?.after)).not.toContain(token);
    // What a peer region checks before applying a replicated change.
    const entityProblem = (kind: string, key: string, ref: string | null, doc: unknown) =>
      registry.service.kinds.problem(kind, key, ref, doc)?.reason;
    expect(entityProblem('device-token', 'tok-6', null, upsert?.after ?? null)).toBeUndefined();
    expect(entityProblem('device-token', 'tok-6', null, null)).toBeUndefined();
    expect(removal?.op).toBe('delete');
    expect(entityProblem('device-token', 'other', null, upsert?.after ?? null)).toMatch(/does not match/);
    expect(entityProblem('device-token', 'tok-6', null, { ...upsert?.after, secretHash: 'x' })).toMatch(
      /invalid device-token document/,
    );
  });

  it('follows a change of a listed policy', async () => {
    await registry.service.putPolicy('tok-5-policy', { policyDocument: DEVICE_POLICY_TEMPLATE() as never });
    await registry.service.putThing('tok-5', {});
    const token = await issue('tok-5', ['tok-5-policy']);
    const client = await online('tok-5', token);
    const gone = closed(client);
    await registry.service.deletePolicy('tok-5-policy', { force: true });
    await gone;
  });
});

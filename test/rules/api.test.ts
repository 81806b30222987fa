import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventRoutes, SqliteEventBus } from '../../src/events/index.js';
import {
  DeadLetterStore,
  type InboundMessage,
  parseRuleDefinitions,
  RuleEngine,
  ruleRoutes,
} from '../../src/rules/index.js';
import { startApi, type TestApi } from '../events/support.js';

let api: TestApi;
let bus: SqliteEventBus;
let deadLetters: DeadLetterStore;
let engine: RuleEngine;
let hook: Server;
let hookUrl: string;
let hookStatus = 500;
let hookRequests = 0;
let hookHeaders: Record<string, string | string[] | undefined> = {};

const rule = { topicFilter: 'dev/+/data', select: ['v'], actions: [{ type: 'bus' }] };

function message(topic: string, payload: unknown): InboundMessage {
  return {
    topic,
    payload: Buffer.from(JSON.stringify(payload)),
    qos: 1,
    retain: false,
    clientId: 'c1',
    thingName: 't1',
    receivedAt: Date.now(),
  };
}

beforeAll(async () => {
  hook = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hookRequests++;
      hookHeaders = req.headers;
      res.statusCode = hookStatus;
      res.end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/in`;
  api = await startApi(async (service, metrics, dir) => {
    bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'us-east', metrics });
    deadLetters = await DeadLetterStore.open(join(dir, 'rules.db'));
    engine = new RuleEngine({
      region: 'us-east',
      bus,
      deadLetters,
      service,
      metrics,
      rules: parseRuleDefinitions([
        { name: 'from_config', topicFilter: 'cfg/#', actions: [{ type: 'bus' }] },
      ]),
      publish: async () => {},
      sleep: async () => {},
      // The receiver listens on loopback, which a region refuses unless the operator lists it.
      http: { allowedNetworks: ['127.0.0.1'] },
    });
    await engine.start();
    return [eventRoutes(bus, service), ruleRoutes(engine)];
  });
});

afterAll(async () => {
  await engine?.stop();
  await api?.close();
  await bus?.close();
  deadLetters?.close();
  await new Promise((r) => hook?.close(r));
});

describe('rules API', () => {
  it('creates, reads, replaces and deletes an API rule, with versions', async () => {
    const created = await api.call('PUT', '/v1/rules/telemetry', rule, api.tokens.operator);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'telemetry',
      source: 'api',
      version: 1,
      enabled: true,
      ...rule,
    });
    expect((await api.call('PUT', '/v1/rules/telemetry', rule, api.tokens.operator)).status).toBe(200);
    expect((await api.call('GET', '/v1/rules/telemetry', undefined, api.tokens.reader)).body.version).toBe(1);

    const stale = await api.call('PUT', '/v1/rules/telemetry', {
      ...rule,
      enabled: false,
      expectedVersion: 5,
    });
    expect(stale.status).toBe(409);
    expect(stale.body.code).toBe('IOTDR_RULES_VERSION_MISMATCH');
    const replaced = await api.call('PUT', '/v1/rules/telemetry', {
      ...rule,
      enabled: false,
      expectedVersion: 1,
    });
    expect(replaced.body).toMatchObject({ version: 2, enabled: false });

    const list = await api.call('GET', '/v1/rules', undefined, api.tokens.reader);
    expect(list.body.items.map((r: { name: string; source: string }) => [r.name, r.source])).toEqual([
      ['from_config', 'config'],
      ['telemetry', 'api'],
    ]);
    expect((await api.call('DELETE', '/v1/rules/telemetry', undefined, api.tokens.operator)).status).toBe(
      204,
    );
    const gone = await api.call('GET', '/v1/rules/telemetry', undefined, api.tokens.reader);
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe('IOTDR_RULES_NOT_FOUND');
    expect((await api.call('DELETE', '/v1/rules/telemetry')).status).toBe(404);
    // Re-created after a delete, it continues its version.
    expect((await api.call('PUT', '/v1/rules/telemetry', rule)).body.version).toBe(4);
  });

  it('refuses the name of a config rule with 409, and changes nothing', async () => {
    const put = await api.call('PUT', '/v1/rules/from_config', rule, api.tokens.operator);
    expect(put.status).toBe(409);
    expect(put.body.code).toBe('IOTDR_RULES_NAME_RESERVED');
    expect((await api.call('DELETE', '/v1/rules/from_config')).body.code).toBe('IOTDR_RULES_NAME_RESERVED');
    expect((await api.call('GET', '/v1/rules/from_config')).body).toMatchObject({
      source: 'config',
      topicFilter: 'cfg/#',
    });
  });

  it('refuses invalid rules with problem+json naming the field, and needs WRITE to change', async () => {
    const cases: Array<[string, unknown, string]> = [
      ['bad-name', rule, 'params.name'],
      ['r', { ...rule, topicFilter: 'a/#/b' }, 'body.topicFilter'],
      ['r', { ...rule, actions: [] }, 'body.actions'],
      ['r', { ...rule, actions: [{ type: 'http', url: 'file:///etc/passwd' }] }, 'body.actions.0.url'],
      ['r', { ...rule, actions: [{ type: 'republish', topic: 'dev/x/data' }] }, 'body.actions.0.topic'],
      // A rule speaking in the platform's name: a forged failover notice would reach every device.
      [
        'r',
        { ...rule, actions: [{ type: 'republish', topic: '$iotdr/notices/failover' }] },
        'body.actions.0.topic',
      ],
      [
        'r',
        { ...rule, actions: [{ type: 'republish', topic: '$iotdr/things/x/commands' }] },
        'body.actions.0.topic',
      ],
      ['r', { ...rule, extra: 1 }, 'body.extra'],
    ];
    for (const [name, body, path] of cases) {
      const res = await api.call('PUT', `/v1/rules/${name}`, body);
      expect(res.status, path).toBe(400);
      expect(res.type).toMatch(/problem\+json/);
      expect(res.body.code).toBe('IOTDR_VALIDATION_FAILED');
      expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
    }
    expect((await api.call('GET', '/v1/rules/r')).status).toBe(404);
    expect((await api.call('PUT', '/v1/rules/r', rule, api.tokens.reader)).status).toBe(403);
    expect((await api.call('GET', '/v1/rules', undefined, null)).status).toBe(401);
  });

  it('runs an API rule as soon as it is written: a message on the bus, read from an offset', async () => {
    await api.call('PUT', '/v1/rules/to_bus', {
      topicFilter: 'sensors/#',
      select: ['t'],
      actions: [{ type: 'bus' }],
    });
    const from = (await bus.lastOffset()) + 1;
    expect((await engine.handle(message('sensors/a', { t: 1, x: 2 }))).matched).toEqual(['to_bus']);
    await engine.handle(message('sensors/b', { t: 2 }));
    const res = await api.call('GET', `/v1/events?from=${from}`, undefined, api.tokens.reader);
    expect(res.body.events.map((e: { payload: unknown }) => e.payload)).toEqual([
      { type: 'json', value: { t: 1 } },
      { type: 'json', value: { t: 2 } },
    ]);
    await api.call('DELETE', '/v1/rules/to_bus');
    expect((await engine.handle(message('sensors/a', { t: 3 }))).matched).toEqual([]);
  });

  it('lists, retries and discards dead letters', async () => {
    await api.call('PUT', '/v1/rules/hook', {
      topicFilter: 'hook/#',
      actions: [{ type: 'http', url: hookUrl, maxAttempts: 2 }],
    });
    hookStatus = 500;
    await engine.handle(message('hook/1', { n: 1 }));
    await engine.handle(message('hook/2', { n: 2 }));
    await engine.idle();
    const list = await api.call('GET', '/v1/rules/dead-letters?rule=hook', undefined, api.tokens.reader);
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(2);
    // The two deliveries ran concurrently: either may have failed first.
    expect(list.body.items.map((d: { body: { value: unknown } }) => d.body.value)).toEqual(
      expect.arrayContaining([{ n: 1 }, { n: 2 }]),
    );
    expect(list.body.items[0]).toMatchObject({
      rule: 'hook',
      url: hookUrl,
      attempts: 2,
      lastError: 'HTTP 500',
    });
    const [first, second] = list.body.items as Array<{ id: string }>;

    const failed = await api.call(
      'POST',
      `/v1/rules/dead-letters/${first?.id}/retry`,
      undefined,
      api.tokens.operator,
    );
    expect(failed.body).toEqual({ outcome: 'failed', lastError: 'HTTP 500' });
    hookStatus = 200;
    const before = hookRequests;
    expect((await api.call('POST', `/v1/rules/dead-letters/${first?.id}/retry`)).body).toEqual({
      outcome: 'delivered',
    });
    expect(hookRequests).toBe(before + 1);
    expect((await api.call('POST', `/v1/rules/dead-letters/${first?.id}/retry`)).status).toBe(404);
    expect(
      (await api.call('DELETE', `/v1/rules/dead-letters/${second?.id}`, undefined, api.tokens.reader)).status,
    ).toBe(403);
    expect((await api.call('DELETE', `/v1/rules/dead-letters/${second?.id}`)).status).toBe(204);
    expect((await api.call('GET', '/v1/rules/dead-letters')).body.items).toEqual([]);
    expect((await api.call('DELETE', '/v1/rules/dead-letters/nope')).status).toBe(400);
  });

  it('never answers with header values, and keeps a stored one when the placeholder comes back', async () => {
    const headers = { authorization: 'Bearer s3cret', 'x-team': 'blue' };
    const hooked = {
      topicFilter: 'secret/#',
      actions: [{ type: 'bus' }, { type: 'http', url: hookUrl, headers, maxAttempts: 1 }],
    };
    const created = await api.call('PUT', '/v1/rules/secret_hook', hooked, api.tokens.operator);
    expect(created.status).toBe(201);
    const redacted = { authorization: '***', 'x-team': '***' };
    expect(created.body.actions[1].headers).toEqual(redacted);
    for (const token of [api.tokens.reader, api.tokens.operator, api.tokens.admin]) {
      const one = await api.call('GET', '/v1/rules/secret_hook', undefined, token);
      expect(one.body.actions[1].headers).toEqual(redacted);
      const list = await api.call('GET', '/v1/rules', undefined, token);
      expect(JSON.stringify(list.body)).not.toContain('s3cret');
    }

    // What was read, sent back with one change: the secret stays as it was stored.
    const read = (await api.call('GET', '/v1/rules/secret_hook', undefined, api.tokens.operator)).body;
    const { topicFilter, actions, version } = read;
    actions[1].headers['x-team'] = 'green';
    const replaced = await api.call(
      'PUT',
      '/v1/rules/secret_hook',
      { topicFilter, actions, expectedVersion: version },
      api.tokens.operator,
    );
    expect(replaced.status).toBe(200);
    expect(replaced.body.version).toBe(version + 1);
    hookStatus = 200;
    await engine.handle(message('secret/1', { n: 1 }));
    await engine.idle();
    expect(hookHeaders).toMatchObject({ authorization: 'Bearer s3cret', 'x-team': 'green' });

    // The placeholder keeps nothing for a URL of another origin, nor for a header never stored.
    const elsewhere = structuredClone(actions);
    elsewhere[1].url = 'https://collector.example.net/in';
    const moved = await api.call('PUT', '/v1/rules/secret_hook', { topicFilter, actions: elsewhere });
    expect(moved.status).toBe(400);
    expect(moved.body.code).toBe('IOTDR_RULES_REDACTED_HEADER');
    expect(moved.body.errors.map((e: { path: string }) => e.path)).toEqual([
      'body.actions.1.headers.authorization',
    ]);
    const fresh = await api.call('PUT', '/v1/rules/fresh_hook', {
      topicFilter: 'fresh/#',
      actions: [{ type: 'http', url: hookUrl, headers: { authorization: '***' } }],
    });
    expect(fresh.status).toBe(400);
    expect(fresh.body.errors[0].path).toBe('body.actions.0.headers.authorization');
    await engine.handle(message('secret/2', { n: 2 }));
    await engine.idle();
    expect(hookHeaders).toMatchObject({ authorization: 'Bearer s3cret' });
    await api.call('DELETE', '/v1/rules/secret_hook');
  });
});

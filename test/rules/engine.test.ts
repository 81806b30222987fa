// biome-ignore-all lint/suspicious/noTemplateCurlyInString: republish topics are written ${thingName}, like AWS IoT substitution templates
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { SqliteEventBus } from '../../src/events/index.js';
import {
  DeadLetterStore,
  type InboundMessage,
  parseRuleDefinitions,
  type RuleDefinition,
  RuleEngine,
  type RuleEngineOptions,
  realSleep,
} from '../../src/rules/index.js';
import { tempDir } from '../events/support.js';

let dir: string;
let removeDir: () => Promise<void>;
let bus: SqliteEventBus;
let deadLetters: DeadLetterStore;
let engine: RuleEngine | undefined;
let metrics: Registry;
const servers: Server[] = [];
const published: Array<{ topic: string; payload: string; qos: number; retain: boolean }> = [];
const sleeps: number[] = [];

beforeEach(async () => {
  ({ dir, remove: removeDir } = await tempDir());
  bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'us-east' });
  deadLetters = await DeadLetterStore.open(join(dir, 'rules.db'));
  metrics = new Registry();
  published.length = 0;
  sleeps.length = 0;
});

afterEach(async () => {
  await engine?.stop();
  engine = undefined;
  await bus.close();
  deadLetters.close();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  await removeDir();
});

function start(rules: unknown[], extra: Partial<RuleEngineOptions> = {}): RuleEngine {
  engine = new RuleEngine({
    region: 'us-east',
    bus,
    deadLetters,
    metrics,
    rules: parseRuleDefinitions(rules),
    publish: async (topic, payload, options) => {
      published.push({ topic, payload: payload.toString(), ...options });
    },
    // Backoff is recorded, not slept: the test drives time.
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    backoff: { baseMs: 100, maxMs: 1000, random: () => 0.5 },
    // The receivers below listen on loopback, which a region refuses unless the operator lists it.
    http: { allowedNetworks: ['127.0.0.0/8'] },
    ...extra,
  });
  return engine;
}

function message(topic: string, payload: unknown, extra: Partial<InboundMessage> = {}): InboundMessage {
  return {
    topic,
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload)),
    qos: 1,
    retain: false,
    clientId: 'client-1',
    thingName: 't1',
    receivedAt: 1_700_000_000_000,
    ...extra,
  };
}

async function metric(name: string): Promise<string> {
  return (await metrics.metrics())
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

/** A local HTTP receiver answering with `statuses` in turn (the last one repeats). */
async function receiver(
  statuses: number[],
): Promise<{ url: string; requests: Array<{ req: IncomingMessage; body: string }> }> {
  const requests: Array<{ req: IncomingMessage; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      requests.push({ req, body });
      res.statusCode = statuses[Math.min(requests.length - 1, statuses.length - 1)] ?? 500;
      res.end();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, requests };
}

describe('rule engine', () => {
  it('puts matching messages on the bus, with the selected fields and the device message id', async () => {
    const e = start([
      {
        name: 'telemetry',
        topicFilter: 'dev/+/telemetry',
        select: ['temp', 'pos.lat'],
        actions: [{ type: 'bus' }],
      },
      { name: 'all', topicFilter: 'other/#', actions: [{ type: 'bus' }] },
    ]);
    const r = await e.handle(
      message('dev/t1/telemetry', { temp: 21, pos: { lat: 1, lon: 2 }, x: 1 }, { messageId: 'msg-1' }),
    );
    expect(r).toEqual({
      matched: ['telemetry'],
      failures: 0,
      busFailures: 0,
      eventId: 'msg-1',
      beyondBus: false,
    });
    await e.handle(message('dev/t1/status', { temp: 1 }));
    await e.handle(message('other/bin', Buffer.from([0, 1, 2]), { thingName: undefined }));
    // QoS1 re-delivery of the same device message: no second event.
    await e.handle(message('dev/t1/telemetry', { temp: 21, pos: { lat: 1 } }, { messageId: 'msg-1' }));
    const { events } = await bus.read({ from: 1, limit: 10 });
    expect(events).toHaveLength(2);
    expect(events[0]).toEqual({
      id: 'msg-1',
      offset: 1,
      region: 'us-east',
      time: 1_700_000_000_000,
      source: { type: 'rule', rule: 'telemetry' },
      topic: 'dev/t1/telemetry',
      thingName: 't1',
      clientId: 'client-1',
      payload: { type: 'json', value: { temp: 21, pos: { lat: 1 } } },
    });
    expect(events[1]).toMatchObject({ source: { rule: 'all' }, payload: { type: 'base64', data: 'AAEC' } });
    expect(events[1]?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(events[1]?.thingName).toBeUndefined();
    expect(await metric('iotdr_rule_matches_total')).toContain(
      'iotdr_rule_matches_total{rule="telemetry"} 2',
    );
  });

  it('counts a failed bus append apart, so the broker withholds the PUBACK', async () => {
    const e = start([{ name: 'telemetry', topicFilter: 'dev/#', actions: [{ type: 'bus' }] }]);
    await bus.close();
    expect(await e.handle(message('dev/t1/telemetry', { temp: 1 }))).toEqual({
      matched: ['telemetry'],
      failures: 1,
      busFailures: 1,
      eventId: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-7/),
      beyondBus: false,
    });
    bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'us-east' });
  });

  it('records a select on a non-JSON payload as a rule error, without throwing', async () => {
    const e = start([{ name: 'sel', topicFilter: '#', select: ['a'], actions: [{ type: 'bus' }] }]);
    expect(await e.handle(message('x', Buffer.from('not json')))).toEqual({
      matched: ['sel'],
      failures: 0,
      busFailures: 0,
      beyondBus: false,
    });
    await e.handle(message('x', [1, 2]));
    expect(await bus.lastOffset()).toBe(0);
    expect(await metric('iotdr_rule_errors_total')).toContain(
      'iotdr_rule_errors_total{rule="sel",reason="payload-not-json-object"} 2',
    );
  });

  it('skips disabled rules', async () => {
    const e = start([{ name: 'off', topicFilter: '#', enabled: false, actions: [{ type: 'bus' }] }]);
    expect((await e.handle(message('x', {}))).matched).toEqual([]);
  });

  it('republishes to a topic with the thing name, and stops a loop across rules', async () => {
    const e = start(
      [
        {
          name: 'copy',
          topicFilter: 'dev/+/data',
          select: ['v'],
          actions: [{ type: 'republish', topic: 'out/${thingName}/v', qos: 1 }],
        },
        { name: 'ping', topicFilter: 'a/#', actions: [{ type: 'republish', topic: 'b/x' }] },
        { name: 'pong', topicFilter: 'b/#', actions: [{ type: 'republish', topic: 'a/x' }] },
      ],
      { maxRepublishDepth: 3 },
    );
    await e.handle(message('dev/t1/data', { v: 5, w: 6 }));
    expect(published).toEqual([{ topic: 'out/t1/v', payload: '{"v":5}', qos: 1, retain: false }]);
    await e.handle(message('dev/t1/data', { v: 5 }, { thingName: undefined }));
    expect(published).toHaveLength(1);

    // The broker hands republished messages back to the engine, as it would.
    published.length = 0;
    let pending = [message('a/start', { n: 1 })];
    for (let round = 0; round < 10 && pending.length > 0; round++) {
      const before = published.length;
      for (const m of pending) await e.handle(m);
      pending = published
        .slice(before)
        .map((p) => message(p.topic, Buffer.from(p.payload), { thingName: undefined }));
    }
    expect(published.map((p) => p.topic)).toEqual(['b/x', 'a/x', 'b/x']);
    expect(await metric('iotdr_rule_errors_total')).toContain('reason="republish-depth"} 1');
    expect(await metric('iotdr_rule_errors_total')).toContain('rule="copy",reason="no-thing-name"} 1');
  });

  it('POSTs to a URL, retrying with backoff until it succeeds', async () => {
    const hook = await receiver([503, 500, 200]);
    const e = start([
      {
        name: 'hook',
        topicFilter: 'dev/#',
        select: ['v'],
        actions: [{ type: 'http', url: hook.url, headers: { 'x-api-key': 'k1' }, maxAttempts: 5 }],
      },
    ]);
    await e.handle(message('dev/t1/data', { v: 1, secret: 2 }, { messageId: 'm-7' }));
    await e.idle();
    expect(hook.requests).toHaveLength(3);
    for (const { req, body } of hook.requests) {
      expect(req.method).toBe('POST');
      expect(req.headers['content-type']).toBe('application/json');
      expect(req.headers['x-api-key']).toBe('k1');
      expect(req.headers['x-iotdr-event-id']).toBe('m-7');
      expect(req.headers['x-iotdr-rule']).toBe('hook');
      expect(JSON.parse(body)).toEqual({ v: 1 });
    }
    // Exponential backoff (full jitter at 0.5): 100 × 2^0 × 0.5, 100 × 2^1 × 0.5.
    expect(sleeps).toEqual([50, 100]);
    expect(deadLetters.count()).toBe(0);
  });

  it('dead-letters a delivery that keeps failing, durably, and can retry it', async () => {
    const hook = await receiver([500]);
    const e = start([
      { name: 'hook', topicFilter: '#', actions: [{ type: 'http', url: hook.url, maxAttempts: 3 }] },
    ]);
    await e.handle(message('dev/t1/data', { v: 1 }, { messageId: 'm-8' }));
    await e.idle();
    expect(hook.requests).toHaveLength(3);
    const [letter] = deadLetters.list({ limit: 10 });
    expect(letter).toMatchObject({
      rule: 'hook',
      eventId: 'm-8',
      url: hook.url,
      attempts: 3,
      lastError: 'HTTP 500',
    });
    expect(letter?.body.toString()).toBe('{"v":1}');
    expect(await metric('iotdr_rule_dead_letters_total')).toContain('{rule="hook"} 1');

    // Reopened, the dead letter is still there.
    deadLetters.close();
    deadLetters = await DeadLetterStore.open(join(dir, 'rules.db'));
    expect(deadLetters.list({ limit: 10 })).toEqual([letter]);
  });

  it('dead-letters a delivery to a server that is not there, naming the error', async () => {
    const hook = await receiver([200]);
    const url = hook.url;
    await new Promise((r) => servers.pop()?.close(r));
    const e = start([
      { name: 'gone', topicFilter: '#', actions: [{ type: 'http', url, maxAttempts: 2, timeoutMs: 1000 }] },
    ]);
    await e.handle(message('x', { a: 1 }));
    await e.idle();
    expect(deadLetters.list({ limit: 10 })[0]).toMatchObject({
      attempts: 2,
      lastError: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it('on stop, dead-letters a delivery still waiting to retry', async () => {
    const hook = await receiver([500]);
    // The backoff is slept for real (a minute, longer than the test): once it has begun, the 500
    // was read and the delivery waits to retry. The receiver having the request is not enough: the
    // engine may not have read the answer yet, and stopping then ends the POST itself.
    const waiting: number[] = [];
    const e = start(
      [{ name: 'slow', topicFilter: '#', actions: [{ type: 'http', url: hook.url, maxAttempts: 5 }] }],
      {
        sleep: (ms, signal) => {
          waiting.push(ms);
          return realSleep(ms, signal);
        },
        backoff: { baseMs: 60_000, maxMs: 60_000, random: () => 0.99 },
      },
    );
    await e.handle(message('x', { a: 1 }));
    await waitUntil(() => waiting.length > 0, {
      timeoutMs: 10_000,
      intervalMs: 5,
      what: 'the delivery to wait for its retry',
    });
    await e.stop();
    expect(hook.requests).toHaveLength(1);
    expect(deadLetters.list({ limit: 10 })[0]).toMatchObject({
      attempts: 1,
      lastError: expect.stringMatching(/HTTP 500; stopped/),
    });
  });

  it('refuses to POST to loopback, link-local or mapped addresses unless they are allowed', async () => {
    const hook = await receiver([200]);
    const port = new URL(hook.url).port;
    const urls = {
      literal: hook.url,
      mapped: `http://[::ffff:127.0.0.1]:${port}/hook`,
      metadata: 'http://169.254.169.254/latest/meta-data/',
      unspecified: `http://0.0.0.0:${port}/hook`,
    };
    const e = start(
      Object.entries(urls).map(([name, url]) => ({
        name,
        topicFilter: `to/${name}`,
        actions: [{ type: 'http', url, maxAttempts: 5 }],
      })),
      { http: { allowedNetworks: [] } },
    );
    for (const name of Object.keys(urls)) await e.handle(message(`to/${name}`, { n: 1 }));
    await e.idle();
    // Nothing reached the receiver, nothing was retried, each delivery is a dead letter saying why.
    expect(hook.requests).toHaveLength(0);
    expect(sleeps).toEqual([]);
    const reasons = Object.fromEntries(deadLetters.list({ limit: 10 }).map((d) => [d.rule, d]));
    expect(reasons).toMatchObject({
      literal: {
        attempts: 1,
        lastError: expect.stringMatching(
          /^refused \(not in ruleHttp\.allowedNetworks\): 127\.0\.0\.1 is loopback$/,
        ),
      },
      mapped: {
        lastError: expect.stringMatching(/^refused \(.*\): ::ffff:7f00:1 is loopback \(IPv4-mapped\)$/),
      },
      metadata: { lastError: expect.stringMatching(/^refused \(.*\): 169\.254\.169\.254 is link-local/) },
      unspecified: { lastError: expect.stringMatching(/^refused \(.*\): 0\.0\.0\.0 is unspecified/) },
    });
    expect(await metric('iotdr_rule_http_refused_total')).toContain(
      'iotdr_rule_http_refused_total{rule="metadata"} 1',
    );
    // Sent again through the API, a refused dead letter is refused again.
    const literal = reasons.literal?.id ?? '';
    expect(await e.retryDeadLetter(literal)).toEqual({
      outcome: 'failed',
      lastError: expect.stringMatching(
        /^refused \(not in ruleHttp\.allowedNetworks\): 127\.0\.0\.1 is loopback$/,
      ),
    });
    expect(hook.requests).toHaveLength(0);
  });

  it('checks the address a name resolves to when it connects, not the name', async () => {
    const hook = await receiver([200]);
    // localhost is no IP literal: only the lookup at connect time finds it is loopback.
    const url = hook.url.replace('127.0.0.1', 'localhost');
    const rule = { name: 'named', topicFilter: '#', actions: [{ type: 'http', url, maxAttempts: 3 }] };
    const refusing = start([rule], { http: { allowedNetworks: [] } });
    await refusing.handle(message('x', { n: 1 }));
    await refusing.idle();
    expect(hook.requests).toHaveLength(0);
    expect(deadLetters.list({ limit: 10 })[0]).toMatchObject({
      attempts: 1,
      lastError: expect.stringMatching(
        /^refused \(.*\): localhost resolves only to refused addresses \(.*127\.0\.0\.1 is loopback/,
      ),
    });
    await refusing.stop();

    // Listed, the same name is delivered to.
    const allowing = start([rule], { http: { allowedNetworks: ['127.0.0.1'] }, metrics: new Registry() });
    await allowing.handle(message('x', { n: 2 }));
    await allowing.idle();
    expect(hook.requests.map((r) => r.body)).toEqual(['{"n":2}']);
  });

  it('lists config rules as read-only', () => {
    const rules: RuleDefinition[] = parseRuleDefinitions([
      { name: 'a', topicFilter: '#', actions: [{ type: 'bus' }] },
    ]);
    const e = start(rules);
    expect(e.listRules()).toEqual([
      { name: 'a', topicFilter: '#', actions: [{ type: 'bus' }], enabled: true, source: 'config' },
    ]);
  });
});

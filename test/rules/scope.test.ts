// biome-ignore-all lint/suspicious/noTemplateCurlyInString: republish topics are written ${thingName}, like AWS IoT substitution templates
/**
 * The rule engine split over processes (a broker node on JetStream appends, the hub does the
 * rest): which actions each scope runs, the one event id they share, and API rules read again from
 * a store whose commits the engine does not see.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteEventBus } from '../../src/events/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import { SqliteStore } from '../../src/registry/index.js';
import {
  DeadLetterStore,
  type InboundMessage,
  parseRuleDefinitions,
  RuleEngine,
} from '../../src/rules/index.js';
import { tempDir } from '../events/support.js';

let dir: string;
let removeDir: () => Promise<void>;
let bus: SqliteEventBus;
let deadLetters: DeadLetterStore;
let hook: Server;
let hookUrl: string;
const hookRequests: IncomingMessage[] = [];
const published: string[] = [];
const closers: Array<() => unknown> = [];

beforeEach(async () => {
  ({ dir, remove: removeDir } = await tempDir());
  bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'us-east' });
  deadLetters = await DeadLetterStore.open(join(dir, 'rules.db'));
  published.length = 0;
  hookRequests.length = 0;
  hook = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hookRequests.push(req);
      res.end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await bus.close();
  deadLetters.close();
  await new Promise((r) => hook.close(r));
  await removeDir();
});

function engine(rules: unknown[], metrics = new Registry()): RuleEngine {
  const e = new RuleEngine({
    region: 'us-east',
    bus,
    deadLetters,
    metrics,
    rules: parseRuleDefinitions(rules),
    publish: async (topic) => {
      published.push(topic);
    },
    sleep: async () => {},
    http: { allowedNetworks: ['127.0.0.1'] },
  });
  closers.push(() => e.stop());
  return e;
}

function message(topic: string, payload: unknown): InboundMessage {
  return {
    topic,
    payload: Buffer.from(JSON.stringify(payload)),
    qos: 1,
    retain: false,
    clientId: 't1',
    thingName: 't1',
    receivedAt: 1_700_000_000_000,
  };
}

async function matches(metrics: Registry, rule: string): Promise<number> {
  const metric = (await metrics.getMetricsAsJSON()).find((m) => m.name === 'iotdr_rule_matches_total');
  return Number(metric?.values.find((v) => v.labels.rule === rule)?.value ?? 0);
}

describe('rule actions split between a node and the hub', () => {
  it("runs only the bus appends with 'bus', says the hub has more, and the hub runs the rest with the node's event id", async () => {
    const rules = [
      { name: 'plain', topicFilter: 'dev/+/data', actions: [{ type: 'bus' }] },
      {
        name: 'echo',
        topicFilter: 'dev/+/ping',
        actions: [{ type: 'bus' }, { type: 'republish', topic: 'dev/${thingName}/pong' }],
      },
      { name: 'hook', topicFilter: 'dev/+/ping', actions: [{ type: 'http', url: hookUrl }] },
    ];
    const [nodeMetrics, hubMetrics] = [new Registry(), new Registry()];
    const node = engine(rules, nodeMetrics);
    const hub = engine(rules, hubMetrics);

    const data = await node.handle(message('dev/t1/data', { v: 1 }), { actions: 'bus' });
    expect(data).toMatchObject({ matched: ['plain'], beyondBus: false, busFailures: 0 });

    const ping = message('dev/t1/ping', { v: 2 });
    const appended = await node.handle(ping, { actions: 'bus' });
    expect(appended).toMatchObject({ matched: ['echo', 'hook'], beyondBus: true });
    expect(published).toEqual([]);
    expect(hookRequests).toHaveLength(0);
    const eventId = appended.eventId ?? '';
    const events = (await bus.read({ from: 1, limit: 10 })).events;
    expect(events.map((e) => e.topic)).toEqual(['dev/t1/data', 'dev/t1/ping']);
    expect(events[1]?.id).toBe(eventId);

    const rest = await hub.handle(ping, { actions: 'not-bus', eventId });
    await hub.idle();
    expect(rest.eventId).toBe(eventId);
    expect(published).toEqual(['dev/t1/pong']);
    expect(hookRequests.map((r) => r.headers['x-iotdr-event-id'])).toEqual([eventId]);
    // Nothing appended twice, and each match counted once, where the appends were made.
    expect((await bus.read({ from: 1, limit: 10 })).events).toHaveLength(2);
    for (const rule of ['echo', 'hook']) {
      expect(await matches(nodeMetrics, rule)).toBe(1);
      expect(await matches(hubMetrics, rule)).toBe(0);
    }
  });

  it('runs every action by default', async () => {
    const e = engine([
      {
        name: 'echo',
        topicFilter: 'dev/+/ping',
        actions: [{ type: 'bus' }, { type: 'republish', topic: 'dev/${thingName}/pong' }],
      },
    ]);
    const result = await e.handle(message('dev/t1/ping', { v: 1 }));
    expect(result).toMatchObject({ matched: ['echo'], beyondBus: true });
    expect(published).toEqual(['dev/t1/pong']);
    expect((await bus.read({ from: 1, limit: 10 })).events.map((ev) => ev.id)).toEqual([result.eventId]);
  });
});

describe('API rules read again', () => {
  it('learns rules made and deleted through another handle on the store only when it reads them again', async () => {
    const path = join(dir, 'registry.db');
    const writerStore = new SqliteStore({ path, synchronous: 'normal' });
    await writerStore.init();
    closers.push(() => writerStore.close());
    const writer = regionRegistryService({ store: writerStore, region: 'us-east' });
    await writer.init();
    const readerStore = new SqliteStore({ path, synchronous: 'normal' });
    await readerStore.init();
    closers.push(() => readerStore.close());
    const reader = new RuleEngine({
      region: 'us-east',
      bus,
      deadLetters,
      service: regionRegistryService({ store: readerStore, region: 'us-east' }),
      rules: [],
      publish: async () => {},
    });
    closers.push(() => reader.stop());
    await reader.start();
    const writing = new RuleEngine({
      region: 'us-east',
      bus,
      deadLetters,
      service: writer,
      rules: [],
      publish: async () => {},
    });
    closers.push(() => writing.stop());
    await writing.start();
    if (!writing.store) throw new Error('no rule store');

    await writing.store.put('late', { topicFilter: 'dev/+/late', actions: [{ type: 'bus' }], enabled: true });
    expect(reader.getRule('late')).toBeUndefined();
    await reader.reload();
    expect(reader.getRule('late')).toMatchObject({ source: 'api', version: 1 });
    expect((await reader.handle(message('dev/t1/late', {}), { actions: 'bus' })).matched).toEqual(['late']);

    await writing.store.delete('late');
    await reader.reload();
    expect(reader.getRule('late')).toBeUndefined();
    expect((await reader.handle(message('dev/t1/late', {}), { actions: 'bus' })).matched).toEqual([]);
  });
});

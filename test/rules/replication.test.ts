import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/common/index.js';
import { SqliteEventBus } from '../../src/events/index.js';
import type { RegistryService } from '../../src/registry/index.js';
import { DeadLetterStore, parseRuleDefinitions, RuleEngine, TOPIC_RULE_KIND } from '../../src/rules/index.js';
import { type Cluster, eventually, startCluster } from '../harness/cluster.js';

let cluster: Cluster;
const engines: Record<string, RuleEngine> = {};
const closers: Array<() => Promise<void> | void> = [];

function service(name: string): RegistryService {
  const running = cluster.regions[name]?.running;
  if (!running) throw new Error(`region ${name} is not running`);
  return running.service;
}

beforeAll(async () => {
  cluster = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' });
  for (const name of ['us-east', 'us-west']) {
    const dir = join(cluster.stateDir, 'rules-test', name);
    const bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: name });
    const deadLetters = await DeadLetterStore.open(join(dir, 'rules.db'));
    // us-west's configuration has a rule named like one us-east makes through the API.
    const rules =
      name === 'us-west' ? [{ name: 'clash', topicFilter: 'west/#', actions: [{ type: 'bus' }] }] : [];
    const engine = new RuleEngine({
      region: name,
      bus,
      deadLetters,
      service: service(name),
      rules: parseRuleDefinitions(rules),
      publish: async () => {},
    });
    await engine.start();
    engines[name] = engine;
    closers.push(
      () => engine.stop(),
      () => bus.close(),
      () => deadLetters.close(),
    );
  }
});

afterAll(async () => {
  for (const close of closers) await close();
  await cluster?.close();
});

describe('topic rules across regions', () => {
  it('a rule made in one region reaches the other, and so does its deletion', async () => {
    const east = engines['us-east'];
    const west = engines['us-west'];
    if (!east?.store || !west) throw new Error('engines not started');
    await east.store.put('shared', { topicFilter: 'dev/+/data', actions: [{ type: 'bus' }], enabled: true });
    await eventually(async () => west.getRule('shared') !== undefined, 'the rule in us-west');
    expect(west.getRule('shared')).toMatchObject({ source: 'api', version: 1, topicFilter: 'dev/+/data' });
    expect(
      (
        await west.handle({
          topic: 'dev/t1/data',
          payload: Buffer.from('{}'),
          qos: 1,
          retain: false,
          clientId: 'c',
          receivedAt: 1,
        })
      ).matched,
    ).toEqual(['shared']);

    // Changed in us-west after a failover, it flows back to us-east.
    await west.store?.put('shared', {
      topicFilter: 'dev/+/data',
      actions: [{ type: 'bus' }],
      enabled: false,
    });
    await eventually(async () => east.getRule('shared')?.enabled === false, 'the change back in us-east');

    await east.store.delete('shared');
    await eventually(async () => west.getRule('shared') === undefined, 'the deletion in us-west');
  });

  it("carries an HTTP action's header values to the peer region", async () => {
    const east = engines['us-east'];
    const west = engines['us-west'];
    if (!east?.store || !west) throw new Error('engines not started');
    const action = {
      type: 'http' as const,
      url: 'https://hooks.example.com/in',
      headers: { authorization: 'Bearer s3cret' },
    };
    await east.store.put('webhook', { topicFilter: 'hooks/never', actions: [action], enabled: true });
    await eventually(async () => west.getRule('webhook') !== undefined, 'the rule in us-west');
    // The peer sends them too; only the rules API redacts them (test/rules/api.test.ts).
    expect(west.getRule('webhook')?.actions).toEqual([action]);
    await east.store.delete('webhook');
  });

  it("keeps a region's config rule over a replicated API rule of the same name", async () => {
    const east = engines['us-east'];
    const west = engines['us-west'];
    if (!east?.store || !west) throw new Error('engines not started');
    await east.store.put('clash', { topicFilter: 'east/#', actions: [{ type: 'bus' }], enabled: true });
    await eventually(
      async () => (await service('us-west').store.get(TOPIC_RULE_KIND, 'clash')) !== undefined,
      'the rule stored in us-west',
    );
    expect(west.getRule('clash')).toMatchObject({ source: 'config', topicFilter: 'west/#' });
    expect(east.getRule('clash')).toMatchObject({ source: 'api', topicFilter: 'east/#' });
  });

  it('dead-letters a topic-rule that does not validate when it arrives by replication', async () => {
    // Written around the API (as a buggy or hostile peer could): a rule that republishes onto itself.
    const east = service('us-east');
    const now = Date.now();
    await east.transaction(async (tx) => {
      await tx.apply({
        changeId: uuidv7(now),
        kind: TOPIC_RULE_KIND,
        key: 'looping',
        op: 'upsert',
        ref: null,
        doc: {
          name: 'looping',
          topicFilter: 'a/#',
          actions: [{ type: 'republish', topic: 'a/b' }],
          enabled: true,
          createdAt: new Date(now).toISOString(),
          updatedAt: new Date(now).toISOString(),
        },
        version: 1,
        hlc: { wall: now, counter: 0 },
        origin: 'us-east',
        at: now,
      });
    });
    const west = cluster.regions['us-west'];
    // The list says what was refused and why; the document itself is for an admin asking for one.
    type Letter = { kind: string; key: string; code: string; reason: string };
    let letter: Letter | undefined;
    await eventually(async () => {
      const res = await west?.call('GET', '/v1/replication/dead-letters');
      letter = (res?.body.items ?? []).find((d: Letter) => d.kind === TOPIC_RULE_KIND && d.key === 'looping');
      return letter !== undefined;
    }, 'the dead letter in us-west');
    // Refused by the registry with the rule's own schema, which the region registered with it.
    expect(letter?.code).toBe('IOTDR_REGISTRY_INVALID_ENTITY');
    expect(letter?.reason).toMatch(/invalid topic-rule document: actions\.0\.topic: .*a loop/);
    expect(await service('us-west').store.get(TOPIC_RULE_KIND, 'looping')).toBeUndefined();
    expect(engines['us-west']?.getRule('looping')).toBeUndefined();
  });
});

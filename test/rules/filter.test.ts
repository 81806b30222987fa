// biome-ignore-all lint/suspicious/noTemplateCurlyInString: republish topics are written ${thingName}, like AWS IoT substitution templates
import { describe, expect, it } from 'vitest';
import { DocumentKinds } from '../../src/registry/index.js';
import {
  parseRuleDefinitions,
  putRuleBody,
  RULE_DOCUMENTS,
  republishTopic,
  selectFields,
  topicFilterProblem,
  topicMatches,
} from '../../src/rules/index.js';

describe('topic filters', () => {
  it.each([
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/b', false],
    ['a/+/c', 'a/x/c', true],
    ['a/+/c', 'a/x/y/c', false],
    ['a/+', 'a/', true],
    ['+/+', '/x', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c/d', true],
    ['a/#', 'b/a', false],
    ['#', 'anything/at/all', true],
    ['#', '$iotdr/notices/failover', false],
    ['+/notices/#', '$iotdr/notices/failover', false],
    ['$iotdr/notices/#', '$iotdr/notices/failover', true],
    ['dev/+/telemetry', 'dev/t1/telemetry', true],
    ['dev/+/telemetry', 'dev/t1/telemetry/x', false],
  ])('%s against %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  it('refuses malformed filters', () => {
    for (const bad of ['', 'a/#/b', 'a#', 'a/b+', '+a/b', 'a/\u0000'])
      expect(topicFilterProblem(bad), bad).toBeDefined();
    for (const good of ['#', '+', 'a/+/#', '/', 'a//b'])
      expect(topicFilterProblem(good), good).toBeUndefined();
  });

  it('fills ${thingName} in a republish topic', () => {
    expect(republishTopic('out/${thingName}/x', 't1')).toBe('out/t1/x');
    expect(republishTopic('out/${thingName}/x', undefined)).toBeUndefined();
    expect(republishTopic('out/fixed', undefined)).toBe('out/fixed');
  });
});

describe('select', () => {
  const doc = { t: 21.5, pos: { lat: 1, lon: 2, alt: { m: 3 } }, arr: [1, 2], n: null };
  it('keeps top-level and dotted fields with their nesting, and leaves out missing ones', () => {
    expect(selectFields(doc, ['t', 'pos.lat', 'pos.alt.m', 'missing', 'pos.none.deeper', 'n'])).toEqual({
      t: 21.5,
      pos: { lat: 1, alt: { m: 3 } },
      n: null,
    });
    expect(selectFields(doc, ['arr.0'])).toEqual({});
  });
  it('does not let a field named __proto__ reach the prototype', () => {
    const out = selectFields(JSON.parse('{"__proto__":{"polluted":true}}'), ['__proto__']);
    expect(Object.hasOwn(out, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('rule validation', () => {
  it('refuses a rule that republishes onto its own filter', () => {
    for (const [filter, topic] of [
      ['dev/+/data', 'dev/x/data'],
      ['dev/#', 'dev/${thingName}/copy'],
      ['dev/+/data', 'dev/${thingName}/data'],
    ] as const) {
      const parsed = putRuleBody.safeParse({ topicFilter: filter, actions: [{ type: 'republish', topic }] });
      expect(parsed.success, `${filter} → ${topic}`).toBe(false);
      expect(parsed.error?.issues[0]?.path).toEqual(['actions', 0, 'topic']);
    }
    expect(
      putRuleBody.safeParse({
        topicFilter: 'dev/+/data',
        actions: [{ type: 'republish', topic: 'out/${thingName}' }],
      }).success,
    ).toBe(true);
  });

  it('names every bad field of config rules', () => {
    expect(() =>
      parseRuleDefinitions([
        { name: 'ok', topicFilter: 'a/#', actions: [{ type: 'bus' }] },
        { name: 'ok', topicFilter: 'a/#/b', actions: [{ type: 'http', url: 'ftp://x', maxAttempts: 0 }] },
        { name: 'bad-name', topicFilter: 'x', actions: [] },
      ]),
    ).toThrowError(
      expect.objectContaining({
        code: 'IOTDR_RULES_INVALID',
        issues: expect.arrayContaining([
          expect.objectContaining({ path: 'rules.1.name' }),
          expect.objectContaining({ path: 'rules.1.topicFilter' }),
          expect.objectContaining({ path: 'rules.1.actions.0.url' }),
          expect.objectContaining({ path: 'rules.1.actions.0.maxAttempts' }),
          expect.objectContaining({ path: 'rules.2.name' }),
          expect.objectContaining({ path: 'rules.2.actions' }),
        ]),
      }),
    );
    expect(parseRuleDefinitions([{ name: 'r', topicFilter: '#', actions: [{ type: 'bus' }] }])).toEqual([
      { name: 'r', topicFilter: '#', actions: [{ type: 'bus' }], enabled: true },
    ]);
  });

  it('validates a topic-rule arriving by replication with the same schema', () => {
    const kinds = new DocumentKinds(RULE_DOCUMENTS);
    const entityProblem = (key: string, doc: unknown) => kinds.problem('topic-rule', key, null, doc)?.reason;
    const doc = {
      name: 'r1',
      topicFilter: 'dev/+/data',
      actions: [{ type: 'bus' }],
      enabled: true,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    };
    expect(entityProblem('r1', doc)).toBeUndefined();
    expect(entityProblem('r2', doc)).toMatch(/does not match/);
    expect(entityProblem('bad-key', null)).toMatch(/not a valid/);
    expect(
      entityProblem('r1', {
        ...doc,
        actions: [{ type: 'republish', topic: 'dev/a/data' }],
      }),
    ).toMatch(/loop/);
  });
});

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CNC_KIND } from '../../src/commands/index.js';
import { IotdrError } from '../../src/common/index.js';
import { REGION_DOCUMENTS, regionRegistryService } from '../../src/processes/index.js';
import { type ChangeRecord, RegistryService, SqliteStore } from '../../src/registry/index.js';
import { RegistryTarget } from '../../src/replication/index.js';
import { RULE_DOCUMENTS, TOPIC_RULE_KIND } from '../../src/rules/index.js';

/**
 * The registry stores documents other components declare (topic rules, command-and-control
 * documents) by checking them with the kinds registered with it. What a peer sends of a kind this
 * region did not register, or that its owner's schema refuses, is never applied: replication
 * dead-letters it with the registry's code.
 */

const at = '2026-01-01T00:00:00.000Z';
const rule = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  topicFilter: 'dev/+/data',
  actions: [{ type: 'bus' }],
  enabled: true,
  createdAt: at,
  updatedAt: at,
  ...extra,
});

let seq = 0;
function ruleChange(key: string, doc: Record<string, unknown>): ChangeRecord {
  seq++;
  return {
    seq,
    id: randomUUID(),
    kind: TOPIC_RULE_KIND,
    key,
    op: 'upsert',
    ref: null,
    after: doc,
    version: 1,
    hlc: { wall: Date.parse(at) + seq, counter: 0 },
    origin: 'us-west',
    committedAt: Date.parse(at),
  };
}

describe('document kinds registered with a registry', () => {
  let dir: string;
  let store: SqliteStore;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'iotdr-kinds-'));
    store = new SqliteStore({ path: join(dir, 'registry.db') });
    await store.init();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("checks a replicated rule with the rules component's schema, and refuses an invalid one", async () => {
    const service = regionRegistryService({ store, region: 'us-east' });
    await service.init();
    const target = new RegistryTarget(service);
    const looping = rule('looping', { actions: [{ type: 'republish', topic: 'dev/a/data' }] });
    const result = await target.applyChanges(
      'us-west',
      [ruleChange('fine', rule('fine')), ruleChange('looping', looping)],
      2,
    );
    expect(result.outcomes).toEqual(['applied', 'dead-letter']);
    expect((await store.get(TOPIC_RULE_KIND, 'fine'))?.doc).toEqual(rule('fine'));
    expect(await store.get(TOPIC_RULE_KIND, 'looping', { includeDeleted: true })).toBeUndefined();
    const [letter] = await target.deadLetters('us-west');
    expect(letter).toMatchObject({ code: 'IOTDR_REGISTRY_INVALID_ENTITY', change: { key: 'looping' } });
    expect(letter?.reason).toMatch(/invalid topic-rule document: actions\.0\.topic: .*a loop/);
  });

  it('refuses a replicated change of a kind not registered with it, with its code', async () => {
    // A registry built without the region's kinds: it knows things, certificates, shadows… not rules.
    const service = new RegistryService({ store, region: 'us-east' });
    await service.init();
    expect(service.kinds.names).not.toContain(TOPIC_RULE_KIND);
    const target = new RegistryTarget(service);
    const result = await target.applyChanges('us-west', [ruleChange('fine', rule('fine'))], 1);
    expect(result.outcomes).toEqual(['dead-letter']);
    expect(await store.get(TOPIC_RULE_KIND, 'fine', { includeDeleted: true })).toBeUndefined();
    const [letter] = await target.deadLetters('us-west');
    expect(letter).toMatchObject({
      code: 'IOTDR_REGISTRY_UNKNOWN_KIND',
      reason: "unknown kind 'topic-rule'",
    });
    // Retried on a registry that still lacks the kind, it stays, with the same code.
    expect(await target.retryDeadLetter('us-west', letter?.id ?? '')).toBe('dead-letter');
    expect((await target.deadLetters('us-west'))[0]).toMatchObject({
      code: 'IOTDR_REGISTRY_UNKNOWN_KIND',
      attempts: 1,
    });
  });

  it("refuses a component's write of a kind it did not register, or of a document its kind refuses", async () => {
    const bare = new RegistryService({ store, region: 'us-east' });
    const job = {
      jobId: randomUUID(),
      state: 'running',
      template: 'tpl',
      region: 'us-east',
      createdBy: 'admin',
      createdAt: at,
      updatedAt: at,
      finishedAt: null,
      total: 1,
      done: 0,
      succeeded: 0,
      failed: 0,
      rejected: [],
      results: [],
    };
    const write = (service: RegistryService, doc: Record<string, unknown>) =>
      service.transaction((tx) =>
        service.writeEntity(tx, CNC_KIND.onboardingJob, job.jobId, null, doc, undefined),
      );
    await expect(write(bare, job)).rejects.toSatisfy(
      (e) => e instanceof IotdrError && e.code === 'IOTDR_REGISTRY_UNKNOWN_KIND' && e.status === 500,
    );
    const region = regionRegistryService({ store, region: 'us-east' });
    await expect(write(region, { ...job, total: -1 })).rejects.toSatisfy(
      (e) => e instanceof IotdrError && e.code === 'IOTDR_REGISTRY_INVALID_ENTITY' && /total/.test(e.message),
    );
    expect(await write(region, job)).toBe(1);
    expect((await store.get(CNC_KIND.onboardingJob, job.jobId))?.doc).toEqual(job);
  });

  it('refuses a kind registered twice, or one that takes the name of its own', () => {
    expect(
      () =>
        new RegistryService({ store, region: 'us-east', kinds: [...REGION_DOCUMENTS, ...RULE_DOCUMENTS] }),
    ).toThrow("document kind 'topic-rule' is registered twice");
    const impostor = { ...(RULE_DOCUMENTS[0] as (typeof RULE_DOCUMENTS)[number]), kind: 'thing' };
    expect(() => new RegistryService({ store, region: 'us-east', kinds: [impostor] })).toThrow(
      "document kind 'thing' is registered twice",
    );
  });
});

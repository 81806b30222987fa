/**
 * The fleet's policy across upgrades: the registry keeps at most five versions of a policy and
 * refuses a sixth, so the platform brings its own template policy up to date itself (the oldest
 * version that is not the default goes first) and writes nothing when it is current.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { ensurePolicy, FLEET_TEMPLATE, onboardFleet } from '../../src/fleet/index.js';
import { ApiClient } from '../../src/http/index.js';
import type { PolicyDocument } from '../../src/registry/index.js';
import { startTestRegion, type TestRegion } from '../harness/region.js';

/** A template of an older release: what it let a device publish, one topic per release. */
function oldTemplate(release: number): PolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: ['iot:Publish'], Resource: [`topic/release-${release}/*`] }],
  };
}

describe("the platform's own policy template", () => {
  let t: TestRegion;
  let api: ApiClient;
  let home: string;

  beforeAll(async () => {
    t = await startTestRegion('us-east');
    const ca = await readFile(join(t.stateDir, 'pki', 'ca.pem'), 'utf8').catch(() => undefined);
    api = new ApiClient('us-east', t.url, t.adminToken, ca);
    home = await mkdtemp(join(tmpdir(), 'iotdr-fleet-policy-'));
  });
  afterAll(async () => {
    await t?.close();
    await rm(home, { recursive: true, force: true });
  });

  const policy = async (name: string) => {
    const res = await t.call('GET', `/v1/policies/${name}`);
    expect(res.status).toBe(200);
    return res.body;
  };
  const putVersions = async (name: string, releases: number[]) => {
    for (const release of releases) {
      const res = await t.call('PUT', `/v1/policies/${name}`, {
        body: { policyDocument: oldTemplate(release) },
      });
      expect(res.status).toBeLessThan(300);
    }
  };

  it('brings a fleet policy of five old versions to the new template when the fleet is onboarded', async () => {
    await putVersions(FLEET_TEMPLATE, [1, 2, 3, 4, 5]);
    expect((await policy(FLEET_TEMPLATE)).versions).toHaveLength(5);
    // A plain PUT of the new template is refused: a sixth version.
    const refused = await t.call('PUT', `/v1/policies/${FLEET_TEMPLATE}`, {
      body: { policyDocument: DEVICE_POLICY_TEMPLATE() },
    });
    expect(refused.body.code).toBe('IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT');

    const devices = await onboardFleet({
      cnc: api,
      api,
      count: 1,
      prefix: 'upgraded',
      auth: 'token',
      stateDir: home,
    });
    expect(devices.map((d) => d.thingName)).toEqual(['upgraded-00001']);
    const upgraded = await policy(FLEET_TEMPLATE);
    expect(upgraded.versions.map((v: { versionId: string }) => v.versionId)).toEqual([
      '2',
      '3',
      '4',
      '5',
      '6',
    ]);
    expect(upgraded.defaultVersionId).toBe('6');
    const byDefault = upgraded.versions.find((v: { versionId: string }) => v.versionId === '6');
    expect(byDefault.document).toEqual(JSON.parse(JSON.stringify(DEVICE_POLICY_TEMPLATE())));

    // Current already: nothing is written, kept credentials or not.
    await onboardFleet({ cnc: api, api, count: 1, prefix: 'upgraded', auth: 'token', stateDir: home });
    expect((await policy(FLEET_TEMPLATE)).version).toBe(upgraded.version);
  });

  it('creates, leaves alone, and upgrades past an operator-chosen default', async () => {
    expect(await ensurePolicy(api, 'fresh-template', DEVICE_POLICY_TEMPLATE())).toEqual({ type: 'created' });
    expect(await ensurePolicy(api, 'fresh-template', DEVICE_POLICY_TEMPLATE())).toEqual({
      type: 'unchanged',
    });

    // Five versions whose oldest is the default (an operator rolled back): the oldest other goes.
    await putVersions('rolled-back', [1, 2, 3, 4, 5]);
    const patched = await t.call('PATCH', '/v1/policies/rolled-back', { body: { defaultVersionId: '1' } });
    expect(patched.status).toBe(200);
    expect(await ensurePolicy(api, 'rolled-back', DEVICE_POLICY_TEMPLATE())).toEqual({
      type: 'updated',
      defaultVersionId: '6',
      deletedVersionId: '2',
    });
    const after = await policy('rolled-back');
    expect(after.versions.map((v: { versionId: string }) => v.versionId)).toEqual(['1', '3', '4', '5', '6']);
    // And again across more releases: each upgrade keeps five versions and works.
    for (const release of [7, 8]) {
      expect(await ensurePolicy(api, 'rolled-back', oldTemplate(release))).toMatchObject({ type: 'updated' });
    }
    expect((await policy('rolled-back')).versions).toHaveLength(5);
  });
});

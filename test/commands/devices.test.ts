/**
 * The command-and-control API of one real region: bulk onboarding with progress and a report, bad
 * device lists refused whole (or in part with partial=true), scoped console tokens, decommission,
 * and the listener over HTTPS with a certificate naming api.<zone>.
 */
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { cncRoutes, JobService } from '../../src/commands/index.js';
import { createLogger, waitUntil } from '../../src/common/index.js';
import { buildApi } from '../../src/http/index.js';
import { fetch } from '../harness/https.js';
import { startTestRegion, type TestRegion } from '../harness/region.js';

const TEMPLATE = 'fleet-device';

describe('command and control', () => {
  let t: TestRegion;

  beforeAll(async () => {
    t = await startTestRegion('us-east');
    expect(
      (
        await t.call('PUT', `/v1/policies/${TEMPLATE}`, {
          body: { policyDocument: DEVICE_POLICY_TEMPLATE() },
        })
      ).status,
    ).toBe(201);
    for (const group of ['north', 'south'])
      expect((await t.call('PUT', `/v1/thing-groups/${group}`, { body: {} })).status).toBe(201);
  });

  afterAll(async () => {
    await t?.close();
  });

  const thingCount = async () => {
    let count = 0;
    let cursor: string | undefined;
    for (;;) {
      const page = await t.call('GET', `/v1/things?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
      count += page.body.items.length;
      cursor = page.body.nextCursor;
      if (!cursor) return count;
    }
  };

  it('onboards 1,000 devices from a CSV list as a job, with progress, a report and the keys once', async () => {
    const lines = ['thingName,groups,attributes'];
    for (let i = 0; i < 1000; i++)
      lines.push(`meter-${String(i).padStart(4, '0')},north,site=plant-${i % 7}`);
    const submitted = await t.cnc('POST', `/v1/onboarding-jobs?template=${TEMPLATE}`, {
      rawBody: lines.join('\r\n'),
      headers: { 'content-type': 'text/csv' },
    });
    expect(submitted.status).toBe(202);
    expect(submitted.body).toMatchObject({ state: 'running', total: 1000, template: TEMPLATE });
    const jobId = submitted.body.jobId as string;

    const seen = new Set<number>();
    let job = submitted.body;
    while (job.state === 'running') {
      await new Promise((r) => setTimeout(r, 100));
      job = (await t.cnc('GET', `/v1/onboarding-jobs/${jobId}`)).body;
      seen.add(job.done);
    }
    // Progress was visible on the way, not only at the end.
    expect([...seen].some((done) => done > 0 && done < 1000)).toBe(true);
    expect(job).toMatchObject({
      state: 'succeeded',
      total: 1000,
      done: 1000,
      succeeded: 1000,
      failed: 0,
      rejected: [],
    });
    expect(job.results).toHaveLength(1000);
    expect(job.results[0]).toMatchObject({
      line: 2,
      thingName: 'meter-0000',
      status: 'created',
      error: null,
    });
    expect(job.keysAvailable).toBe(true);

    const keys = await t.cnc('POST', `/v1/onboarding-jobs/${jobId}/keys`);
    expect(keys.status).toBe(200);
    expect(Object.keys(keys.body.keys)).toHaveLength(1000);
    expect(keys.body.keys['meter-0999'].privateKeyPem).toContain('PRIVATE KEY');
    expect(keys.body.keys['meter-0999'].certificatePem).toContain('BEGIN CERTIFICATE');
    const twice = await t.cnc('POST', `/v1/onboarding-jobs/${jobId}/keys`);
    expect(twice.status).toBe(410);
    expect(twice.body.code).toBe('IOTDR_CNC_KEYS_GONE');

    const device = await t.cnc('GET', '/v1/devices/meter-0042');
    expect(device.body).toMatchObject({
      groups: ['north'],
      state: 'active',
      attributes: { site: 'plant-0' },
    });
    expect(device.body.certificates[0].policies).toEqual([TEMPLATE]);
  }, 120_000);

  it('refuses a bad list whole, naming every line and field, and onboards the valid part with partial=true', async () => {
    const before = await thingCount();
    const csv = [
      'thingName,groups',
      'valve-1,south',
      'valve 2,south', // a space is not allowed in a thing name
      'valve-3,nowhere', // unknown group
      'valve-1,south', // twice in the list
      '"valve-5,south', // unclosed quote
    ].join('\n');
    const refused = await t.cnc('POST', `/v1/onboarding-jobs?template=${TEMPLATE}`, {
      rawBody: csv,
      headers: { 'content-type': 'text/csv' },
    });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body.errors).toEqual([{ path: 'line 6', message: 'a quoted field is not closed' }]);
    expect(await thingCount()).toBe(before);

    const fixed = csv.replace('"valve-5,south', 'valve-5,south');
    const unknownGroup = await t.cnc('POST', `/v1/onboarding-jobs?template=${TEMPLATE}`, {
      rawBody: fixed,
      headers: { 'content-type': 'text/csv' },
    });
    expect(unknownGroup.status).toBe(404);
    expect(unknownGroup.body.code).toBe('IOTDR_CNC_UNKNOWN_GROUP');

    const lines = fixed.replace('valve-3,nowhere', 'valve-3,north');
    const invalid = await t.cnc('POST', `/v1/onboarding-jobs?template=${TEMPLATE}`, {
      rawBody: lines,
      headers: { 'content-type': 'text/csv' },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.code).toBe('IOTDR_CNC_INVALID_DEVICE_LIST');
    expect(invalid.body.errors.map((e: { path: string }) => e.path)).toEqual([
      'line 3.thingName',
      'line 5.thingName',
    ]);
    expect(invalid.body.errors[1].message).toContain('already on line 2');
    expect(await thingCount()).toBe(before);

    const partial = await t.cnc('POST', `/v1/onboarding-jobs?template=${TEMPLATE}&partial=true`, {
      rawBody: lines,
      headers: { 'content-type': 'text/csv' },
    });
    expect(partial.status).toBe(202);
    let job = partial.body;
    while (job.state === 'running') job = (await t.cnc('GET', `/v1/onboarding-jobs/${job.jobId}`)).body;
    expect(job).toMatchObject({ state: 'completed-with-errors', total: 3, succeeded: 3 });
    expect(job.rejected).toEqual([
      expect.stringMatching(/^line 3\.thingName: /),
      expect.stringMatching(/^line 5\.thingName: 'valve-1' is already on line 2/),
    ]);
    expect(await thingCount()).toBe(before + 3);
  });

  it('refuses unknown templates, groups, devices and commands with problem+json, and JSON lists field by field', async () => {
    const template = await t.cnc('POST', '/v1/devices', { body: { thingName: 'x-1', template: 'no-such' } });
    expect(template.status).toBe(404);
    expect(template.body.code).toBe('IOTDR_CNC_UNKNOWN_TEMPLATE');
    const group = await t.cnc('POST', '/v1/devices', {
      body: { thingName: 'x-1', template: TEMPLATE, groups: ['ghosts'] },
    });
    expect(group.body.code).toBe('IOTDR_CNC_UNKNOWN_GROUP');
    expect((await t.call('GET', '/v1/things/x-1')).status).toBe(404);
    for (const path of ['/v1/devices/ghost/suspend', '/v1/devices/ghost/commands']) {
      const res = await t.cnc('POST', path, { body: path.endsWith('commands') ? { name: 'x' } : undefined });
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('IOTDR_CNC_UNKNOWN_DEVICE');
    }
    const command = await t.cnc('GET', '/v1/commands/0190f5d2-6a1c-7b3e-9c4d-2f1e0a9b8c7d');
    expect(command.body.code).toBe('IOTDR_CNC_UNKNOWN_COMMAND');
    const json = await t.cnc('POST', '/v1/onboarding-jobs', {
      body: { template: TEMPLATE, devices: [{ thingName: 'ok-1' }, { thingName: 'ok-2', csr: 42 }, 'nope'] },
    });
    expect(json.status).toBe(400);
    expect(json.body.errors.map((e: { path: string }) => e.path)).toEqual(['line 2.csr', 'line 3']);
    const twice = await t.cnc('POST', '/v1/devices', { body: { thingName: 'valve-1', template: TEMPLATE } });
    expect(twice.status).toBe(409);
    expect(twice.body.code).toBe('IOTDR_CNC_DEVICE_EXISTS');
  });

  it('limits a scoped console token to its operations, thing groups and templates, and to command-and-control routes', async () => {
    const created = await t.call('POST', '/v1/tokens', {
      body: {
        name: 'south-console',
        role: 'operator',
        scope: { operations: ['read', 'onboard', 'command'], thingGroups: ['south'] },
      },
    });
    expect(created.status).toBe(201);
    // Its scope lists no templates: it onboards with none, so it cannot hand a device any policy.
    const noTemplates = await t.cnc('POST', '/v1/devices', {
      token: created.body.token,
      body: { thingName: 'tap-0', template: TEMPLATE, groups: ['south'] },
    });
    expect(noTemplates.status).toBe(403);
    expect(noTemplates.body.code).toBe('IOTDR_CNC_OUT_OF_SCOPE');
    expect(noTemplates.body.detail).toContain('lists no templates');
    // A scope listing the templates it may onboard with.
    const withTemplates = await t.call('POST', '/v1/tokens', {
      body: {
        name: 'south-onboarder',
        role: 'operator',
        scope: { operations: ['read', 'onboard', 'command'], thingGroups: ['south'], templates: [TEMPLATE] },
      },
    });
    expect(withTemplates.status).toBe(201);
    expect(withTemplates.body.info.scope.templates).toEqual([TEMPLATE]);
    const token = withTemplates.body.token as string;
    expect(
      (
        await t.call('PUT', '/v1/policies/everything', {
          body: {
            policyDocument: {
              Version: '2012-10-17',
              Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }],
            },
          },
        })
      ).status,
    ).toBe(201);
    const privileged = await t.cnc('POST', '/v1/devices', {
      token,
      body: { thingName: 'tap-9', template: 'everything', groups: ['south'] },
    });
    expect(privileged.status).toBe(403);
    expect(privileged.body.code).toBe('IOTDR_CNC_OUT_OF_SCOPE');
    expect(privileged.body.detail).toContain(`it may use ${TEMPLATE}`);
    const privilegedJob = await t.cnc('POST', '/v1/onboarding-jobs', {
      token,
      body: { template: 'everything', groups: ['south'], devices: [{ thingName: 'tap-9' }] },
    });
    expect(privilegedJob.status).toBe(403);
    expect(privilegedJob.body.code).toBe('IOTDR_CNC_OUT_OF_SCOPE');
    expect((await t.call('GET', '/v1/things/tap-9')).status).toBe(404);
    const onboarded = await t.cnc('POST', '/v1/devices', {
      token,
      body: { thingName: 'tap-1', template: TEMPLATE, groups: ['south'] },
    });
    expect(onboarded.status).toBe(201);
    const noGroup = await t.cnc('POST', '/v1/devices', {
      token,
      body: { thingName: 'tap-2', template: TEMPLATE },
    });
    expect(noGroup.status).toBe(403);
    expect(noGroup.body.code).toBe('IOTDR_CNC_OUT_OF_SCOPE');
    const otherGroup = await t.cnc('POST', '/v1/devices', {
      token,
      body: { thingName: 'tap-2', template: TEMPLATE, groups: ['north'] },
    });
    expect(otherGroup.status).toBe(403);
    expect((await t.cnc('GET', '/v1/devices/meter-0001', { token })).status).toBe(403);
    expect(
      (await t.cnc('POST', '/v1/devices/tap-1/commands', { token, body: { name: 'open' } })).status,
    ).toBe(201);
    const suspend = await t.cnc('POST', '/v1/devices/tap-1/suspend', { token });
    expect(suspend.status).toBe(403);
    expect(suspend.body.detail).toContain('may not suspend');
    // The registry API is not for scoped tokens: its routes know nothing of scopes.
    const registry = await t.call('GET', '/v1/things', { token });
    expect(registry.status).toBe(403);
    expect(registry.body.code).toBe('IOTDR_AUTH_SCOPED_TOKEN');
  });

  it('shows a scoped token only the onboarding jobs it submitted; unscoped tokens see all', async () => {
    const made = async (name: string, scope?: unknown) => {
      const res = await t.call('POST', '/v1/tokens', {
        body: { name, role: scope ? 'operator' : 'reader', ...(scope ? { scope } : {}) },
      });
      expect(res.status).toBe(201);
      return res.body.token as string;
    };
    const scope = { operations: ['read', 'onboard'], thingGroups: ['south'], templates: [TEMPLATE] };
    const [mine, neighbour, reader] = [
      await made('south-a', scope),
      await made('south-b', scope),
      await made('auditor'),
    ];
    const submitted = await t.cnc('POST', '/v1/onboarding-jobs', {
      token: mine,
      body: { template: TEMPLATE, groups: ['south'], devices: [{ thingName: 'scoped-job-1' }] },
    });
    expect(submitted.status).toBe(202);
    expect(submitted.body.owner).toBeUndefined();
    const path = `/v1/onboarding-jobs/${submitted.body.jobId}`;
    let job = submitted.body;
    while (job.state === 'running') job = (await t.cnc('GET', path, { token: mine })).body;
    expect(job).toMatchObject({ state: 'succeeded', keysAvailable: true });
    expect(job.owner).toBeUndefined();
    // Same scope, another token: not its job, though every device is in its groups.
    const read = await t.cnc('GET', path, { token: neighbour });
    expect(read.status).toBe(403);
    expect(read.body.code).toBe('IOTDR_CNC_OUT_OF_SCOPE');
    expect(read.body.detail).toContain('only the onboarding jobs it submitted');
    expect((await t.cnc('POST', `${path}/keys`, { token: neighbour })).status).toBe(403);
    // An unscoped reader, and the admin, see it.
    for (const token of [reader, t.adminToken])
      expect((await t.cnc('GET', path, { token })).body).toMatchObject({ state: 'succeeded', total: 1 });
    // A job the admin submitted is not the scoped token's either.
    const admins = await t.cnc('POST', '/v1/onboarding-jobs', {
      body: { template: TEMPLATE, groups: ['south'], devices: [{ thingName: 'scoped-job-2' }] },
    });
    expect(admins.status).toBe(202);
    expect((await t.cnc('GET', `/v1/onboarding-jobs/${admins.body.jobId}`, { token: mine })).status).toBe(
      403,
    );
    expect((await t.cnc('POST', `${path}/keys`, { token: mine })).status).toBe(200);
  });

  it("hands a job's keys only to the token that submitted it", async () => {
    const made = async (name: string) =>
      (await t.call('POST', '/v1/tokens', { body: { name, role: 'operator' } })).body.token as string;
    const [mine, theirs] = [await made('console-a'), await made('console-b')];
    const submitted = await t.cnc('POST', '/v1/onboarding-jobs', {
      token: mine,
      body: { template: TEMPLATE, devices: [{ thingName: 'own-1' }, { thingName: 'own-2' }] },
    });
    expect(submitted.status).toBe(202);
    const path = `/v1/onboarding-jobs/${submitted.body.jobId}`;
    let job = submitted.body;
    while (job.state === 'running') job = (await t.cnc('GET', path, { token: mine })).body;
    expect(job.keysAvailable).toBe(true);
    // Another console, and the admin, see the job but not its keys.
    for (const token of [theirs, t.adminToken]) {
      expect((await t.cnc('GET', path, { token })).body).toMatchObject({
        state: 'succeeded',
        keysAvailable: false,
      });
      const refused = await t.cnc('POST', `${path}/keys`, { token });
      expect(refused.status).toBe(404);
      expect(refused.body.code).toBe('IOTDR_CNC_KEYS_NOT_FOUND');
    }
    const keys = await t.cnc('POST', `${path}/keys`, { token: mine });
    expect(keys.status).toBe(200);
    expect(Object.keys(keys.body.keys).sort()).toEqual(['own-1', 'own-2']);
    expect((await t.cnc('POST', `${path}/keys`, { token: mine })).body.code).toBe('IOTDR_CNC_KEYS_GONE');
  });

  it('drops keys not fetched within their TTL, and the job says when', async () => {
    let now = Date.now();
    const jobs = new JobService({ service: t.region.service, clock: { now: () => now }, keysTtlMs: 60_000 });
    const app = await buildApi({
      openapi: { title: 'cnc', description: 'keys TTL under test' },
      tokens: t.region.service,
      logger: createLogger({ level: 'silent' }),
      routes: [
        cncRoutes({
          service: t.region.service,
          commands: t.region.cnc.commands,
          jobs,
          idempotency: t.region.cnc.idempotency,
        }),
      ],
    });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const call = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${t.adminToken}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: res.status, body: (await res.json()) as any };
      };
      const submitted = await call('POST', '/v1/onboarding-jobs', {
        template: TEMPLATE,
        devices: [{ thingName: 'late-1' }],
      });
      expect(submitted.status).toBe(202);
      const path = `/v1/onboarding-jobs/${submitted.body.jobId}`;
      let job = submitted.body;
      while (job.state === 'running') job = (await call('GET', path)).body;
      expect(job).toMatchObject({ keysAvailable: true });
      expect(job.keysExpiredAt).toBeUndefined();
      now += 60_000;
      await waitUntil(async () => (await call('GET', path)).body.keysExpiredAt !== undefined, {
        timeoutMs: 10_000,
        what: 'the job to record that its keys expired',
      });
      job = (await call('GET', path)).body;
      expect(job).toMatchObject({ keysAvailable: false, keysExpiredAt: new Date(now).toISOString() });
      const gone = await call('POST', `${path}/keys`);
      expect(gone.status).toBe(410);
      expect(gone.body.code).toBe('IOTDR_CNC_KEYS_EXPIRED');
    } finally {
      await app.close();
      await jobs.stop();
    }
  });

  it('decommissions a device: its certificates, memberships, commands and the thing go; the shared template stays', async () => {
    const onboarded = await t.cnc('POST', '/v1/devices', {
      body: { thingName: 'old-1', template: TEMPLATE, groups: ['north', 'south'] },
    });
    expect(onboarded.status).toBe(201);
    const id = onboarded.body.certificateId as string;
    expect((await t.cnc('POST', '/v1/devices/old-1/commands', { body: { name: 'ping' } })).status).toBe(201);
    const gone = await t.cnc('DELETE', '/v1/devices/old-1');
    expect(gone.status).toBe(200);
    expect(gone.body).toMatchObject({
      thingName: 'old-1',
      certificates: [id],
      sharedCertificates: [],
      groups: ['north', 'south'],
      commands: 1,
    });
    expect((await t.call('GET', '/v1/things/old-1')).status).toBe(404);
    expect((await t.call('GET', `/v1/certificates/${id}`)).status).toBe(404);
    expect((await t.call('GET', `/v1/policies/${TEMPLATE}`)).status).toBe(200);
    expect((await t.call('GET', '/v1/thing-groups/north')).status).toBe(200);
    expect((await t.cnc('GET', '/v1/devices/old-1/commands')).status).toBe(404);
    expect((await t.cnc('DELETE', '/v1/devices/old-1')).status).toBe(404);
  });

  it('serves HTTPS with a certificate for api.<zone> from the embedded CA', async () => {
    const secure = await startTestRegion('eu-west', {
      regions: [{ name: 'eu-west', priority: 1, address: '127.0.0.1', cnc: { tls: true } }],
    });
    try {
      expect(secure.region.cncUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = secure.region.ca.certificatePem;
      const url = new URL('/v1/devices/none', secure.region.cncUrl);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            servername: 'api.iot.test',
            ca,
            headers: { authorization: `Bearer ${secure.adminToken}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(404);
      // Without the CA (the system's CAs only) the certificate is not trusted.
      await expect(
        new Promise((resolve, reject) => {
          const req = request(`${secure.region.cncUrl}/livez`, (res) => resolve(res.resume()));
          req.on('error', reject);
          req.end();
        }),
      ).rejects.toThrow(/self-signed|certificate/i);
      const health = await secure.call('GET', '/health/cnc');
      expect(health.body.status).toBe('pass');
    } finally {
      await secure.close();
    }
  });
});

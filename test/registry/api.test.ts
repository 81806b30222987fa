import { webcrypto } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { x509 } from '../../src/pki/index.js';
import { fetch } from '../harness/https.js';
import { startTestRegion, type TestRegion } from '../harness/region.js';

let r: TestRegion;
const tokens: Record<string, string> = {};

async function lastSeq(): Promise<number> {
  return r.region.service.store.lastSeq();
}

/** Asserts the answer is a problem+json with this status and code, and returns it. */
function expectProblem(res: { status: number; body: any; headers: Headers }, status: number, code: string) {
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code });
  expect(typeof res.body.detail).toBe('string');
  expect(res.status).toBe(status);
  return res.body;
}

const allowAll = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }],
};

beforeAll(async () => {
  r = await startTestRegion();
  for (const role of ['reader', 'operator', 'replicator'] as const) {
    const res = await r.call('POST', '/v1/tokens', { body: { name: `${role}-1`, role } });
    expect(res.status).toBe(201);
    tokens[role] = res.body.token;
  }
});

afterAll(async () => {
  await r?.close();
});

describe('authentication and roles', () => {
  it('refuses a request without a token with 401 problem+json', async () => {
    const res = await r.call('GET', '/v1/things', { token: null });
    expectProblem(res, 401, 'IOTDR_AUTH_REQUIRED');
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('refuses an unknown or malformed token with 401', async () => {
    expectProblem(await r.call('GET', '/v1/things', { token: 'nope' }), 401, 'IOTDR_AUTH_INVALID_TOKEN');
    const forged = `${tokens.reader?.slice(0, -4)}AAAA`;
    expectProblem(await r.call('GET', '/v1/things', { token: forged }), 401, 'IOTDR_AUTH_INVALID_TOKEN');
  });

  it('answers 401 before reading the body of an unauthenticated write', async () => {
    const seq = await lastSeq();
    const res = await r.call('PUT', '/v1/things/x', { token: null, rawBody: '{not json' });
    expectProblem(res, 401, 'IOTDR_AUTH_REQUIRED');
    expect(await lastSeq()).toBe(seq);
  });

  it('lets a reader read and nothing more', async () => {
    expect((await r.call('GET', '/v1/things', { token: tokens.reader })).status).toBe(200);
    const seq = await lastSeq();
    expectProblem(
      await r.call('PUT', '/v1/things/by-reader', { token: tokens.reader, body: {} }),
      403,
      'IOTDR_AUTH_FORBIDDEN',
    );
    expectProblem(await r.call('GET', '/v1/changes', { token: tokens.reader }), 403, 'IOTDR_AUTH_FORBIDDEN');
    expect(await lastSeq()).toBe(seq);
  });

  it('does not take a replicator token for a region over mutual TLS: the change log is for sites', async () => {
    // Peers read the change log with their site certificates (test/http/site-tls.test.ts); a
    // replicator token stands for a region on plain loopback links only.
    expectProblem(
      await r.call('GET', '/v1/changes', { token: tokens.replicator }),
      403,
      'IOTDR_AUTH_SITE_REQUIRED',
    );
    expectProblem(
      await r.call('GET', '/v1/things', { token: tokens.replicator }),
      403,
      'IOTDR_AUTH_FORBIDDEN',
    );
    expectProblem(await r.call('GET', '/v1/changes', { token: tokens.reader }), 403, 'IOTDR_AUTH_FORBIDDEN');
    expect((await r.call('GET', '/v1/changes')).status).toBe(200);
  });

  it('keeps token management for admins', async () => {
    expectProblem(
      await r.call('POST', '/v1/tokens', { token: tokens.operator, body: { name: 'x', role: 'admin' } }),
      403,
      'IOTDR_AUTH_FORBIDDEN',
    );
    const list = await r.call('GET', '/v1/tokens');
    expect(list.status).toBe(200);
    // The admin token and the three of this test: over mutual TLS the region makes no replicator
    // or analytics token (its peers and analytics show site certificates).
    expect(list.body.items.map((t: { name: string; role: string }) => `${t.name}:${t.role}`).sort()).toEqual([
      'admin:admin',
      'operator-1:operator',
      'reader-1:reader',
      'replicator-1:replicator',
    ]);
    expect(JSON.stringify(list.body)).not.toMatch(/secretHash/);
  });

  it('revokes a deleted token at once', async () => {
    const made = await r.call('POST', '/v1/tokens', { body: { name: 'short-lived', role: 'reader' } });
    expect((await r.call('GET', '/v1/things', { token: made.body.token })).status).toBe(200);
    expect((await r.call('DELETE', `/v1/tokens/${made.body.info.tokenId}`)).status).toBe(204);
    expectProblem(
      await r.call('GET', '/v1/things', { token: made.body.token }),
      401,
      'IOTDR_AUTH_INVALID_TOKEN',
    );
  });
});

describe('bad input changes nothing', () => {
  it.each([
    ['malformed JSON', { rawBody: '{"attributes": ' }, 'IOTDR_HTTP_MALFORMED_BODY', 'body'],
    ['unknown field', { body: { attributes: {}, colour: 'red' } }, 'IOTDR_VALIDATION_FAILED', 'body.colour'],
    [
      'bad attribute value',
      { body: { attributes: { a: 'b c' } } },
      'IOTDR_VALIDATION_FAILED',
      'body.attributes.a',
    ],
    ['wrong type', { body: { attributes: 'x' } }, 'IOTDR_VALIDATION_FAILED', 'body.attributes'],
  ])('%s → 400 naming the field', async (_name, options, code, path) => {
    const seq = await lastSeq();
    const res = await r.call('PUT', '/v1/things/valid-name', options);
    const p = expectProblem(res, 400, code);
    expect(p.errors.map((e: { path: string }) => e.path)).toContain(path);
    expect(await lastSeq()).toBe(seq);
    expect((await r.call('GET', '/v1/things/valid-name')).status).toBe(404);
  });

  it('refuses keys that would poison a prototype, saying why', async () => {
    const res = await r.call('PUT', '/v1/things/proto', {
      rawBody: '{"attributes":{"__proto__":{"x":"1"}}}',
    });
    const p = expectProblem(res, 400, 'IOTDR_HTTP_MALFORMED_BODY');
    expect(p.detail).toMatch(/prototype/i);
    expect((await r.call('GET', '/v1/things/proto')).status).toBe(404);
  });

  it('treats an empty JSON body as no body', async () => {
    await r.call('PUT', '/v1/things/empty-body-delete', { body: {} });
    const del = await r.call('DELETE', '/v1/things/empty-body-delete', { rawBody: '' });
    expect(del.status).toBe(204);
    const put = await r.call('PUT', '/v1/things/no-body', { rawBody: '' });
    expect(expectProblem(put, 400, 'IOTDR_VALIDATION_FAILED').errors[0].path).toBe('body');
  });

  it('refuses an invalid name with 400 naming the path parameter', async () => {
    const res = await r.call('PUT', `/v1/things/${encodeURIComponent('bad name!')}`, { body: {} });
    const p = expectProblem(res, 400, 'IOTDR_VALIDATION_FAILED');
    expect(p.errors[0].path).toBe('params.name');
    expectProblem(
      await r.call('PUT', `/v1/things/${'x'.repeat(129)}`, { body: {} }),
      400,
      'IOTDR_VALIDATION_FAILED',
    );
  });

  it('refuses an oversized body with 413', async () => {
    const seq = await lastSeq();
    const big = { attributes: { a: 'x'.repeat(2 * 1024 * 1024) } };
    expectProblem(await r.call('PUT', '/v1/things/big', { body: big }), 413, 'IOTDR_HTTP_BODY_TOO_LARGE');
    expect(await lastSeq()).toBe(seq);
  });

  it('refuses a body that is not JSON with 415', async () => {
    const res = await r.call('PUT', '/v1/things/t', {
      rawBody: 'a=b',
      headers: { 'content-type': 'text/plain' },
    });
    expectProblem(res, 415, 'IOTDR_HTTP_UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses invalid PEM and CSR', async () => {
    const seq = await lastSeq();
    const garbage = await r.call('POST', '/v1/certificates/register', { body: { certificatePem: 'hello' } });
    expect(garbage.status).toBe(400);
    expect(garbage.body.code).toMatch(/^IOTDR_PKI_/);
    const csr = await r.call('POST', '/v1/certificates', {
      body: { csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' },
    });
    expectProblem(csr, 400, 'IOTDR_PKI_INVALID_CSR');
    expect(await lastSeq()).toBe(seq);
  });

  it('refuses a policy document that does not parse, naming the field', async () => {
    const seq = await lastSeq();
    const bad = await r.call('PUT', '/v1/policies/p-bad', {
      body: {
        policyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Maybe', Action: 'iot:Connect', Resource: '*' }],
        },
      },
    });
    const p = expectProblem(bad, 400, 'IOTDR_POLICY_INVALID');
    expect(p.errors.map((e: { path: string }) => e.path)).toContain('policyDocument.Statement.0.Effect');
    const notJson = await r.call('PUT', '/v1/policies/p-bad', { body: { policyDocument: '{"Version":' } });
    expectProblem(notJson, 400, 'IOTDR_POLICY_INVALID');
    expect(await lastSeq()).toBe(seq);
  });

  it('answers unknown routes with a 404 problem', async () => {
    expectProblem(await r.call('GET', '/v1/nothing-here'), 404, 'IOTDR_HTTP_NOT_FOUND');
  });
});

describe('things, types and groups', () => {
  it('creates with 201, updates with 200, and a repeated PUT writes nothing', async () => {
    const created = await r.call('PUT', '/v1/things/sensor-1', { body: { attributes: { floor: '3' } } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ thingName: 'sensor-1', attributes: { floor: '3' }, version: 1 });
    const seq = await lastSeq();
    const again = await r.call('PUT', '/v1/things/sensor-1', { body: { attributes: { floor: '3' } } });
    expect(again.status).toBe(200);
    expect(again.body.version).toBe(1);
    expect(await lastSeq()).toBe(seq);
    const updated = await r.call('PUT', '/v1/things/sensor-1', { body: { attributes: { floor: '4' } } });
    expect(updated.body.version).toBe(2);
    expect((await r.call('GET', '/v1/things/sensor-1')).body.attributes).toEqual({ floor: '4' });
  });

  it('checks expectedVersion', async () => {
    const res = await r.call('PUT', '/v1/things/sensor-1', { body: { attributes: {}, expectedVersion: 1 } });
    const p = expectProblem(res, 409, 'IOTDR_REGISTRY_VERSION_MISMATCH');
    expect(p).toMatchObject({ expectedVersion: 1, actualVersion: 2 });
    expect(
      (await r.call('PUT', '/v1/things/sensor-1', { body: { attributes: {}, expectedVersion: 2 } })).status,
    ).toBe(200);
    expectProblem(
      await r.call('PUT', '/v1/things/fresh', { body: { expectedVersion: 3 } }),
      409,
      'IOTDR_REGISTRY_VERSION_MISMATCH',
    );
  });

  it('enforces thing types: must exist, deprecated ones take no new things, in-use ones cannot go', async () => {
    expectProblem(
      await r.call('PUT', '/v1/things/typed', { body: { thingTypeName: 'meter' } }),
      409,
      'IOTDR_REGISTRY_MISSING_REFERENCE',
    );
    expect(
      (await r.call('PUT', '/v1/thing-types/meter', { body: { description: 'power meter' } })).status,
    ).toBe(201);
    expect((await r.call('PUT', '/v1/things/typed', { body: { thingTypeName: 'meter' } })).status).toBe(201);
    const inUse = expectProblem(
      await r.call('DELETE', '/v1/thing-types/meter'),
      409,
      'IOTDR_REGISTRY_IN_USE',
    );
    expect(inUse.names).toEqual(['typed']);
    await r.call('PUT', '/v1/thing-types/meter', { body: { deprecated: true } });
    expectProblem(
      await r.call('PUT', '/v1/things/typed-2', { body: { thingTypeName: 'meter' } }),
      409,
      'IOTDR_REGISTRY_THING_TYPE_DEPRECATED',
    );
  });

  it('keeps group hierarchies acyclic and membership consistent', async () => {
    expect((await r.call('PUT', '/v1/thing-groups/site', { body: {} })).status).toBe(201);
    expect(
      (await r.call('PUT', '/v1/thing-groups/floor-3', { body: { parentGroupName: 'site' } })).status,
    ).toBe(201);
    expectProblem(
      await r.call('PUT', '/v1/thing-groups/site', { body: { parentGroupName: 'floor-3' } }),
      409,
      'IOTDR_REGISTRY_GROUP_CYCLE',
    );
    expectProblem(
      await r.call('PUT', '/v1/thing-groups/orphan', { body: { parentGroupName: 'nowhere' } }),
      409,
      'IOTDR_REGISTRY_MISSING_REFERENCE',
    );
    expect((await r.call('PUT', '/v1/thing-groups/floor-3/things/sensor-1')).status).toBe(201);
    expect((await r.call('PUT', '/v1/thing-groups/floor-3/things/sensor-1')).status).toBe(200);
    expect((await r.call('GET', '/v1/thing-groups/floor-3/things')).body.items).toEqual(['sensor-1']);
    expect((await r.call('GET', '/v1/things/sensor-1/thing-groups')).body.items).toEqual(['floor-3']);
    expectProblem(await r.call('DELETE', '/v1/thing-groups/site'), 409, 'IOTDR_REGISTRY_IN_USE');
    expectProblem(await r.call('DELETE', '/v1/thing-groups/floor-3'), 409, 'IOTDR_REGISTRY_STILL_ATTACHED');
    expect((await r.call('DELETE', '/v1/thing-groups/floor-3?force=true')).status).toBe(204);
    expect((await r.call('GET', '/v1/things/sensor-1/thing-groups')).body.items).toEqual([]);
    expect((await r.call('DELETE', '/v1/thing-groups/site')).status).toBe(204);
  });

  it('paginates with an opaque cursor', async () => {
    for (let i = 0; i < 25; i++) {
      await r.call('PUT', `/v1/things/page-${String(i).padStart(2, '0')}`, { body: {} });
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const res = await r.call('GET', `/v1/things?limit=10${q}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((t: { thingName: string }) => t.thingName));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    const pageThings = seen.filter((n) => n.startsWith('page-'));
    expect(pageThings).toHaveLength(25);
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBeGreaterThanOrEqual(3);
    expectProblem(await r.call('GET', '/v1/things?cursor=bogus'), 400, 'IOTDR_VALIDATION_FAILED');
    expectProblem(await r.call('GET', '/v1/things?limit=5000'), 400, 'IOTDR_VALIDATION_FAILED');
  });
});

describe('certificates, policies and attachments', () => {
  it('issues a certificate with a generated key once, and signs a CSR', async () => {
    const made = await r.call('POST', '/v1/certificates', { body: {} });
    expect(made.status).toBe(201);
    expect(made.body.privateKeyPem).toMatch(/PRIVATE KEY/);
    expect(made.body.certificate.status).toBe('ACTIVE');
    const id = made.body.certificate.certificateId;
    const read = await r.call('GET', `/v1/certificates/${id}`);
    expect(JSON.stringify(read.body)).not.toMatch(/PRIVATE KEY/);
    const changes = await r.call('GET', '/v1/changes?after=0&limit=10000');
    expect(JSON.stringify(changes.body)).not.toMatch(/PRIVATE KEY/);

    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=csr-device',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const signed = await r.call('POST', '/v1/certificates', {
      body: { csr: csr.toString('pem'), status: 'INACTIVE' },
    });
    expect(signed.status).toBe(201);
    expect(signed.body.privateKeyPem).toBeUndefined();
    expect(signed.body.certificate).toMatchObject({ status: 'INACTIVE', subject: 'CN=csr-device' });
  });

  it('registers certificates signed by a registered CA, or on their own', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const caKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const now = Date.now();
    const caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=Customer CA',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      keys: caKeys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    const devKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const devCert = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: 'CN=customer-device',
      issuer: caCert.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      publicKey: devKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: alg,
    });
    const body = { certificatePem: devCert.toString('pem'), caCertificatePem: caCert.toString('pem') };
    expectProblem(
      await r.call('POST', '/v1/certificates/register', { body }),
      409,
      'IOTDR_REGISTRY_CA_NOT_REGISTERED',
    );
    const ca = await r.call('POST', '/v1/ca-certificates', {
      body: { caCertificatePem: caCert.toString('pem') },
    });
    expect(ca.status).toBe(201);
    const reg = await r.call('POST', '/v1/certificates/register', { body });
    expect(reg.status).toBe(201);
    expect(reg.body.caCertificateId).toBe(ca.body.certificateId);
    expect((await r.call('POST', '/v1/certificates/register', { body })).status).toBe(200);
    expectProblem(
      await r.call('POST', '/v1/certificates/register', { body: { certificatePem: caCert.toString('pem') } }),
      400,
      'IOTDR_PKI_UNEXPECTED_CA',
    );
    expectProblem(
      await r.call('DELETE', `/v1/ca-certificates/${ca.body.certificateId}`),
      409,
      'IOTDR_REGISTRY_IN_USE',
    );

    // A self-signed device certificate registers on its own (no CA).
    const aloneKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const alone = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '03',
      name: 'CN=lonely-device',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      keys: aloneKeys,
      signingAlgorithm: alg,
    });
    const alone1 = await r.call('POST', '/v1/certificates/register', {
      body: { certificatePem: alone.toString('pem'), status: 'PENDING_ACTIVATION' },
    });
    expect(alone1.status).toBe(201);
    expect(alone1.body).toMatchObject({ caCertificateId: null, status: 'PENDING_ACTIVATION' });
  });

  it('refuses to delete what is attached, says to what, and force detaches first', async () => {
    const cert = (await r.call('POST', '/v1/certificates', { body: {} })).body.certificate;
    const id = cert.certificateId as string;
    await r.call('PUT', '/v1/things/door-1', { body: {} });
    expect(
      (await r.call('PUT', '/v1/policies/door-policy', { body: { policyDocument: allowAll } })).status,
    ).toBe(201);
    expect((await r.call('PUT', `/v1/things/door-1/certificates/${id}`)).status).toBe(201);
    expect((await r.call('PUT', `/v1/certificates/${id}/policies/door-policy`)).status).toBe(201);
    expect((await r.call('PUT', `/v1/certificates/${id}/policies/door-policy`)).status).toBe(200);
    expect((await r.call('GET', `/v1/certificates/${id}/things`)).body.items).toEqual(['door-1']);
    expect((await r.call('GET', `/v1/certificates/${id}/policies`)).body.items).toEqual(['door-policy']);

    const seq = await lastSeq();
    const certDel = expectProblem(
      await r.call('DELETE', `/v1/certificates/${id}`),
      409,
      'IOTDR_REGISTRY_STILL_ATTACHED',
    );
    expect(certDel.attached).toEqual(
      expect.arrayContaining([
        { kind: 'thing', key: 'door-1' },
        { kind: 'policy', key: 'door-policy' },
      ]),
    );
    const polDel = expectProblem(
      await r.call('DELETE', '/v1/policies/door-policy'),
      409,
      'IOTDR_REGISTRY_STILL_ATTACHED',
    );
    expect(polDel.detail).toContain(id);
    expectProblem(await r.call('DELETE', '/v1/things/door-1'), 409, 'IOTDR_REGISTRY_STILL_ATTACHED');
    expect(await lastSeq()).toBe(seq);

    expect((await r.call('DELETE', '/v1/policies/door-policy?force=true')).status).toBe(204);
    expect((await r.call('GET', `/v1/certificates/${id}/policies`)).body.items).toEqual([]);
    await r.call('PATCH', `/v1/certificates/${id}`, { body: { status: 'INACTIVE' } });
    expectProblem(await r.call('DELETE', `/v1/certificates/${id}`), 409, 'IOTDR_REGISTRY_STILL_ATTACHED');
    expect((await r.call('DELETE', `/v1/things/door-1/certificates/${id}`)).status).toBe(204);
    expect((await r.call('DELETE', `/v1/certificates/${id}`)).status).toBe(204);
    expect((await r.call('GET', `/v1/certificates/${id}`)).status).toBe(404);
  });

  it('guards certificate status: active ones need force to delete, revoked is final', async () => {
    const id = (await r.call('POST', '/v1/certificates', { body: {} })).body.certificate.certificateId;
    expectProblem(await r.call('DELETE', `/v1/certificates/${id}`), 409, 'IOTDR_REGISTRY_CERTIFICATE_ACTIVE');
    expect(
      (await r.call('PATCH', `/v1/certificates/${id}`, { body: { status: 'REVOKED' } })).body.status,
    ).toBe('REVOKED');
    expectProblem(
      await r.call('PATCH', `/v1/certificates/${id}`, { body: { status: 'ACTIVE' } }),
      409,
      'IOTDR_REGISTRY_CERTIFICATE_REVOKED',
    );
    expectProblem(
      await r.call('PATCH', `/v1/certificates/${id}`, { body: { status: 'BROKEN' } }),
      400,
      'IOTDR_VALIDATION_FAILED',
    );
  });

  it('versions policies and does not add a version for the same document', async () => {
    const first = await r.call('PUT', '/v1/policies/versioned', { body: { policyDocument: allowAll } });
    expect(first.body.defaultVersionId).toBe('1');
    const same = await r.call('PUT', '/v1/policies/versioned', {
      body: { policyDocument: JSON.stringify(allowAll) },
    });
    expect(same.status).toBe(200);
    expect(same.body.versions).toHaveLength(1);
  });

  // https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicyVersion.html: "A managed
  // policy can have up to five versions. If the policy has five versions, you must use
  // DeletePolicyVersion to delete an existing version before you create a new one."
  // API_DeletePolicyVersion.html: "You cannot delete the default version of a policy".
  it('refuses a sixth policy version; deletes a version other than the default, sets the default', async () => {
    const doc = (i: number) => ({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: `topic/t${i}` }],
    });
    for (let i = 1; i <= 5; i++) {
      const res = await r.call('PUT', '/v1/policies/five', { body: { policyDocument: doc(i) } });
      expect(res.body.defaultVersionId).toBe(String(i));
    }
    const seq = await lastSeq();
    const full = expectProblem(
      await r.call('PUT', '/v1/policies/five', { body: { policyDocument: doc(6) } }),
      409,
      'IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT',
    );
    expect(full).toMatchObject({ limit: 5, versionIds: ['1', '2', '3', '4', '5'], defaultVersionId: '5' });
    // The default version's document again is no new version, full or not.
    expect((await r.call('PUT', '/v1/policies/five', { body: { policyDocument: doc(5) } })).status).toBe(200);
    expectProblem(
      await r.call('DELETE', '/v1/policies/five/versions/5'),
      409,
      'IOTDR_REGISTRY_POLICY_DEFAULT_VERSION',
    );
    expectProblem(await r.call('DELETE', '/v1/policies/five/versions/9'), 404, 'IOTDR_REGISTRY_NOT_FOUND');
    expect(await lastSeq()).toBe(seq);

    expect((await r.call('DELETE', '/v1/policies/five/versions/5?expectedVersion=1')).status).toBe(409);
    const defaulted = await r.call('PATCH', '/v1/policies/five', { body: { defaultVersionId: '2' } });
    expect(defaulted.status).toBe(200);
    expect(defaulted.body.defaultVersionId).toBe('2');
    expect((await r.call('DELETE', '/v1/policies/five/versions/5')).status).toBe(204);
    expectProblem(
      await r.call('PATCH', '/v1/policies/five', { body: { defaultVersionId: '5' } }),
      404,
      'IOTDR_REGISTRY_NOT_FOUND',
    );
    // A deleted version's id is never given again.
    const next = await r.call('PUT', '/v1/policies/five', { body: { policyDocument: doc(6) } });
    expect(next.status).toBe(200);
    expect(next.body.defaultVersionId).toBe('6');
    expect(next.body.versions.map((v: { versionId: string }) => v.versionId)).toEqual([
      '1',
      '2',
      '3',
      '4',
      '6',
    ]);
  });

  // https://docs.aws.amazon.com/iot/latest/apireference/API_AttachThingPrincipal.html
  // (thingPrincipalType in the query string) and
  // https://docs.aws.amazon.com/iot/latest/developerguide/exclusive-thing.html: an exclusive
  // attachment makes the thing the certificate's only one; the certificate "cannot be used with
  // other things".
  it('attaches a certificate exclusively or not, and keeps an exclusive one its only thing', async () => {
    const id = (await r.call('POST', '/v1/certificates', { body: {} })).body.certificate
      .certificateId as string;
    for (const t of ['ex-1', 'ex-2', 'ex-3']) await r.call('PUT', `/v1/things/${t}`, { body: {} });

    const plain = await r.call('PUT', `/v1/things/ex-1/certificates/${id}`);
    expect(plain.status).toBe(201);
    expect(plain.body.thingPrincipalType).toBe('NON_EXCLUSIVE_THING');
    expect((await r.call('PUT', `/v1/things/ex-2/certificates/${id}`)).status).toBe(201);
    const seq = await lastSeq();
    const refused = expectProblem(
      await r.call('PUT', `/v1/things/ex-1/certificates/${id}?thingPrincipalType=EXCLUSIVE_THING`),
      409,
      'IOTDR_REGISTRY_EXCLUSIVE_THING',
    );
    expect(refused).toMatchObject({ certificateId: id, things: ['ex-2'] });
    expect(await lastSeq()).toBe(seq);

    expect((await r.call('DELETE', `/v1/things/ex-2/certificates/${id}`)).status).toBe(204);
    const exclusive = await r.call(
      'PUT',
      `/v1/things/ex-1/certificates/${id}?thingPrincipalType=EXCLUSIVE_THING`,
    );
    expect(exclusive.status).toBe(200);
    expect(exclusive.body.thingPrincipalType).toBe('EXCLUSIVE_THING');
    // A retried attach without a type keeps the type.
    const again = await r.call('PUT', `/v1/things/ex-1/certificates/${id}`);
    expect(again.body).toMatchObject({
      thingPrincipalType: 'EXCLUSIVE_THING',
      version: exclusive.body.version,
    });
    expect((await r.call('GET', `/v1/things/ex-1/certificates/${id}`)).body.thingPrincipalType).toBe(
      'EXCLUSIVE_THING',
    );
    for (const type of [
      '',
      '?thingPrincipalType=NON_EXCLUSIVE_THING',
      '?thingPrincipalType=EXCLUSIVE_THING',
    ]) {
      const other = expectProblem(
        await r.call('PUT', `/v1/things/ex-3/certificates/${id}${type}`),
        409,
        'IOTDR_REGISTRY_EXCLUSIVE_THING',
      );
      expect(other.things).toEqual(['ex-1']);
    }
    expectProblem(
      await r.call('PUT', `/v1/things/ex-3/certificates/${id}?thingPrincipalType=SOMETIMES`),
      400,
      'IOTDR_VALIDATION_FAILED',
    );
    const relaxed = await r.call(
      'PUT',
      `/v1/things/ex-1/certificates/${id}?thingPrincipalType=NON_EXCLUSIVE_THING`,
    );
    expect(relaxed.body.thingPrincipalType).toBe('NON_EXCLUSIVE_THING');
    expect((await r.call('PUT', `/v1/things/ex-3/certificates/${id}`)).status).toBe(201);
  });

  // https://docs.aws.amazon.com/iot/latest/developerguide/thing-groups.html: "You can attach a
  // policy to a parent group and it is inherited by its child groups, and by all of the things in
  // the group and in its child groups." AttachPolicy (API_AttachPolicy.html) takes a thing group or
  // a certificate as `target`.
  it('attaches policies to thing groups, which their things and child groups inherit', async () => {
    await r.call('PUT', '/v1/policies/site-policy', { body: { policyDocument: allowAll } });
    await r.call('PUT', '/v1/policies/floor-policy', { body: { policyDocument: allowAll } });
    await r.call('PUT', '/v1/thing-groups/site', { body: {} });
    await r.call('PUT', '/v1/thing-groups/floor', { body: { parentGroupName: 'site' } });
    await r.call('PUT', '/v1/things/lamp-1', { body: {} });
    await r.call('PUT', '/v1/thing-groups/floor/things/lamp-1');

    const attached = await r.call('PUT', '/v1/thing-groups/site/policies/site-policy');
    expect(attached.status).toBe(201);
    expect(attached.body).toMatchObject({ thingGroupName: 'site', policyName: 'site-policy' });
    expect((await r.call('PUT', '/v1/thing-groups/site/policies/site-policy')).status).toBe(200);
    // AWS's AttachPolicy: the target is a group's ARN (region and account are not checked) or name.
    const byArn = await r.call('PUT', '/v1/target-policies/floor-policy', {
      body: { target: 'arn:aws:iot:eu-west-1:123456789012:thinggroup/floor' },
    });
    expect(byArn.status).toBe(201);
    expect((await r.call('GET', '/v1/thing-groups/floor/policies')).body.items).toEqual(['floor-policy']);
    expect((await r.call('GET', '/v1/things/lamp-1/policies')).body.items).toEqual([
      'floor-policy',
      'site-policy',
    ]);
    expectProblem(
      await r.call('PUT', '/v1/target-policies/floor-policy', {
        body: { target: 'arn:aws:iot:x:1:thing/lamp-1' },
      }),
      400,
      'IOTDR_VALIDATION_FAILED',
    );
    expectProblem(
      await r.call('PUT', '/v1/thing-groups/nowhere/policies/site-policy'),
      404,
      'IOTDR_REGISTRY_NOT_FOUND',
    );

    const polDel = expectProblem(
      await r.call('DELETE', '/v1/policies/site-policy'),
      409,
      'IOTDR_REGISTRY_STILL_ATTACHED',
    );
    expect(polDel.attached).toEqual([{ kind: 'thing-group', key: 'site' }]);
    expect(
      (await r.call('POST', '/v1/target-policies/floor-policy', { body: { target: 'floor' } })).status,
    ).toBe(204);
    expect((await r.call('GET', '/v1/things/lamp-1/policies')).body.items).toEqual(['site-policy']);
    expect((await r.call('DELETE', '/v1/thing-groups/floor/things/lamp-1')).status).toBe(204);
    expect((await r.call('GET', '/v1/things/lamp-1/policies')).body.items).toEqual([]);
    expect((await r.call('DELETE', '/v1/thing-groups/floor')).status).toBe(204);
    const groupDel = expectProblem(
      await r.call('DELETE', '/v1/thing-groups/site'),
      409,
      'IOTDR_REGISTRY_STILL_ATTACHED',
    );
    expect(groupDel.attached).toEqual([{ kind: 'policy', key: 'site-policy' }]);
    expect((await r.call('DELETE', '/v1/thing-groups/site?force=true')).status).toBe(204);
    expect((await r.call('DELETE', '/v1/policies/site-policy')).status).toBe(204);
  });
});

describe('change log', () => {
  it('serves every change in order, one per mutation, with its after-image', async () => {
    const before = await lastSeq();
    await r.call('PUT', '/v1/things/logged', { body: { attributes: { k: 'v' } } });
    await r.call('DELETE', '/v1/things/logged');
    const res = await r.call('GET', `/v1/changes?after=${before}`, { token: r.adminToken });
    expect(res.status).toBe(200);
    const [up, del] = res.body.changes;
    expect(up).toMatchObject({
      seq: before + 1,
      kind: 'thing',
      key: 'logged',
      op: 'upsert',
      origin: 'us-east',
      version: 1,
      after: { thingName: 'logged', attributes: { k: 'v' } },
    });
    expect(del).toMatchObject({
      seq: before + 2,
      kind: 'thing',
      key: 'logged',
      op: 'delete',
      after: null,
      version: 2,
    });
    expect(del.hlc.wall * 1e6 + del.hlc.counter).toBeGreaterThan(up.hlc.wall * 1e6 + up.hlc.counter);
    expect(res.body.lastSeq).toBe(before + 2);

    const all = await r.call('GET', '/v1/changes?after=0&limit=10000', { token: r.adminToken });
    const seqs = all.body.changes.map((c: { seq: number }) => c.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const page = await r.call('GET', '/v1/changes?after=2&limit=3', { token: r.adminToken });
    expect(page.body.changes.map((c: { seq: number }) => c.seq)).toEqual([3, 4, 5]);
  });

  it('long-polls: an empty answer waits for the next commit', async () => {
    const after = await lastSeq();
    const started = Date.now();
    const waiting = r.call('GET', `/v1/changes?after=${after}&wait=10000`, { token: r.adminToken });
    await new Promise((res) => setTimeout(res, 200));
    await r.call('PUT', '/v1/things/wakes-the-poll', { body: {} });
    const res = await waiting;
    expect(res.body.changes.map((c: { key: string }) => c.key)).toEqual(['wakes-the-poll']);
    expect(Date.now() - started).toBeLessThan(9000);
    const none = await r.call('GET', `/v1/changes?after=${after + 1}&wait=100`, { token: r.adminToken });
    expect(none.body.changes).toEqual([]);
  });

  it('rejects bad change-log queries', async () => {
    expectProblem(
      await r.call('GET', '/v1/changes?after=-1', { token: r.adminToken }),
      400,
      'IOTDR_VALIDATION_FAILED',
    );
    expectProblem(
      await r.call('GET', '/v1/changes?wait=99999', { token: r.adminToken }),
      400,
      'IOTDR_VALIDATION_FAILED',
    );
  });
});

describe('operations endpoints', () => {
  it('publishes an OpenAPI 3 document of the routes', async () => {
    const res = await r.call('GET', '/openapi.json', { token: null });
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    for (const path of ['/v1/things/{name}', '/v1/certificates', '/v1/changes', '/v1/policies/{name}']) {
      expect(Object.keys(res.body.paths)).toContain(path);
    }
    expect(res.body.paths['/v1/things/{name}'].put.requestBody).toBeDefined();
    // Every reference resolves: a generated client must find each schema it is pointed at.
    const refs = [...JSON.stringify(res.body).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map(
      (m) => m[1] as string,
    );
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of new Set(refs)) expect(Object.keys(res.body.components.schemas ?? {})).toContain(ref);
  });

  it('exports Prometheus metrics', async () => {
    const res = await fetch(`${r.url}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/iotdr_registry_changes_total\{[^}]*kind="thing"/);
    expect(text).toMatch(/iotdr_http_request_duration_seconds_bucket/);
  });

  it('echoes a request id', async () => {
    const res = await r.call('GET', '/v1/things/none', { headers: { 'x-request-id': 'trace-123' } });
    expect(res.headers.get('x-request-id')).toBe('trace-123');
    expect(res.body.requestId).toBe('trace-123');
  });
});

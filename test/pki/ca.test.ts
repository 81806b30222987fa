import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { chmod, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isSignedBy, loadOrCreateCa, PKI_ERROR_CODES, parseCertificatePem } from '../../src/pki/index.js';
import { expectPkiError, makeTempDir } from './helpers.js';

const posix = process.platform !== 'win32';
const pkiEntry = new URL('../../src/pki/index.ts', import.meta.url).href;
const DAY = 86_400_000;

describe('loadOrCreateCa', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let dir: string;

  beforeEach(async () => {
    ({ dir: root, cleanup } = await makeTempDir());
    dir = join(root, 'state', 'pki');
  });
  afterEach(async () => {
    await cleanup();
  });

  it('creates a self-signed P-256 CA once and reloads the same one', async () => {
    const created = await loadOrCreateCa(dir, { commonName: 'Acme fleet CA' });
    const parsed = parseCertificatePem(created.certificatePem);
    expect(parsed).toMatchObject({ isCa: true, keyAlgorithm: 'EC P-256', subject: 'CN=Acme fleet CA' });
    expect(parsed.issuer).toBe(parsed.subject);
    expect(created.subject).toBe('CN=Acme fleet CA');
    const lifetimeDays = (Date.parse(parsed.notAfter) - Date.parse(parsed.notBefore)) / DAY;
    expect(lifetimeDays).toBeGreaterThan(3650);
    expect(lifetimeDays).toBeLessThan(3660);

    const openssl = new X509Certificate(created.certificatePem);
    expect(openssl.ca).toBe(true);
    expect(openssl.verify(openssl.publicKey)).toBe(true);

    const files = await readdir(dir);
    expect(files.sort()).toEqual(['ca.key', 'ca.pem']);
    const keyBefore = await readFile(join(dir, 'ca.key'), 'utf8');

    const reloaded = await loadOrCreateCa(dir, { commonName: 'ignored once the CA exists' });
    expect(reloaded.certificateId).toBe(created.certificateId);
    expect(reloaded.certificatePem).toBe(created.certificatePem);
    expect(reloaded.subject).toBe(created.subject);
    expect(await readFile(join(dir, 'ca.key'), 'utf8')).toBe(keyBefore);

    // What the first instance signed, the reloaded one's certificate vouches for, and vice versa.
    const device = await reloaded.issueDeviceCertificate();
    expect(await isSignedBy(device.certificatePem, created.certificatePem)).toBe(true);
  });

  it.runIf(posix)('keeps the key 0600, the certificate 0644 and the directory 0700', async () => {
    await loadOrCreateCa(dir);
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'ca.pem'))).mode & 0o777).toBe(0o644);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it.runIf(posix)('tightens a key file that others can read', async () => {
    await loadOrCreateCa(dir);
    await chmod(join(dir, 'ca.key'), 0o644);
    await loadOrCreateCa(dir);
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
  });

  it('gives concurrent callers on one directory the same CA', async () => {
    const cas = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateCa(dir)));
    const ids = new Set(cas.map((ca) => ca.certificateId));
    expect(ids.size).toBe(1);
    const [first] = cas;
    expect(await readFile(join(dir, 'ca.pem'), 'utf8')).toBe(first?.certificatePem);
    // No temp file of a losing writer is left behind.
    expect((await readdir(dir)).sort()).toEqual(['ca.key', 'ca.pem']);
  });

  it('gives separate processes started together the same CA', async () => {
    // Each child loads the module, says "ready", and waits for "go" on stdin, so all of them reach
    // loadOrCreateCa at the same moment instead of one after another as they finish starting.
    const script = `import { loadOrCreateCa } from ${JSON.stringify(pkiEntry)};
      process.stdout.write('ready\\n');
      process.stdin.once('data', async () => {
        const ca = await loadOrCreateCa(process.argv[1]);
        process.stdout.write(ca.certificateId);
        process.stdin.destroy();
      });`;
    const children = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir]);
      let out = '';
      child.stdout.setEncoding('utf8');
      const ready = new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk: string) => {
          out += chunk;
          if (out.includes('ready\n')) resolve();
        });
      });
      const exited = once(child, 'exit').then(([code]) => ({ code, id: out.replace('ready\n', '').trim() }));
      return { child, ready, exited };
    });
    try {
      await Promise.all(children.map((c) => c.ready));
      for (const c of children) c.child.stdin.write('go\n');
      const results = await Promise.all(children.map((c) => c.exited));
      expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
      const ids = new Set(results.map((r) => r.id));
      expect(ids.size).toBe(1);
      const [id] = ids;
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect((await loadOrCreateCa(dir)).certificateId).toBe(id);
    } finally {
      for (const c of children) if (c.child.exitCode === null) c.child.kill();
    }
  });

  it('refuses a certificate whose key is missing instead of making a new key for it', async () => {
    await loadOrCreateCa(dir);
    await rm(join(dir, 'ca.key'));
    await expectPkiError(() => loadOrCreateCa(dir), PKI_ERROR_CODES.caInvalid, /ca\.key does not/, 500);
    expect(await readdir(dir)).toEqual(['ca.pem']);
  });

  it('refuses a ca.pem that belongs to another key', async () => {
    const { dir: otherDir, cleanup: cleanupOther } = await makeTempDir();
    try {
      const other = await loadOrCreateCa(otherDir);
      await loadOrCreateCa(dir);
      await writeFile(join(dir, 'ca.pem'), other.certificatePem);
      await expectPkiError(
        () => loadOrCreateCa(dir),
        PKI_ERROR_CODES.caInvalid,
        /does not belong to the private key/,
        500,
      );
    } finally {
      await cleanupOther();
    }
  });

  it('refuses an unreadable key file with the path and what to do', async () => {
    await loadOrCreateCa(dir);
    await writeFile(join(dir, 'ca.key'), 'not a key');
    const error = await expectPkiError(
      () => loadOrCreateCa(dir),
      PKI_ERROR_CODES.caInvalid,
      /ca\.key is not a usable CA private key.*restore/,
      500,
    );
    expect(error.details.path).toBe(join(dir, 'ca.key'));
  });

  it('re-creates a lost ca.pem from the kept key, so earlier certificates stay valid', async () => {
    const ca = await loadOrCreateCa(dir);
    const device = await ca.issueDeviceCertificate({ commonName: 'sensor-1' });
    await rm(join(dir, 'ca.pem'));
    const again = await loadOrCreateCa(dir);
    expect(again.certificateId).not.toBe(ca.certificateId);
    expect(again.subject).toBe(ca.subject);
    expect(await isSignedBy(device.certificatePem, again.certificatePem)).toBe(true);
  });

  it('never writes a generated private key into the CA directory', async () => {
    const ca = await loadOrCreateCa(dir);
    const device = await ca.issueDeviceCertificate({ commonName: 'sensor-7' });
    const server = await ca.issueServerCertificate({
      commonName: 'us-east',
      dnsNames: ['mqtt.iot.test'],
      ipAddresses: [],
    });
    const bodyOf = (pem: string) => pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    const secrets = [device.privateKeyPem, server.privateKeyPem].map(bodyOf);
    expect((await readdir(dir)).sort()).toEqual(['ca.key', 'ca.pem']);
    for (const entry of await readdir(root, { recursive: true })) {
      const path = join(root, entry);
      if (!(await stat(path)).isFile()) continue;
      const content = bodyOf(await readFile(path, 'utf8'));
      for (const secret of secrets) expect(content.includes(secret)).toBe(false);
    }
    expect(device.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('dates certificates by the injected clock and never past the CA', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const ca = await loadOrCreateCa(dir, { now: () => now });
    const caCert = parseCertificatePem(ca.certificatePem);
    expect(caCert.notBefore).toBe('2029-12-31T23:59:00.000Z');

    now = Date.parse('2030-06-01T12:00:00Z');
    const device = await ca.issueDeviceCertificate();
    expect(device.notBefore).toBe('2030-06-01T11:59:00.000Z');
    expect(device.notAfter).toBe('2031-06-01T12:00:00.000Z');
    const server = await ca.issueServerCertificate({
      commonName: 's',
      dnsNames: ['s.test'],
      ipAddresses: [],
    });
    expect(Date.parse(server.notAfter) - now).toBe(397 * DAY);

    now = Date.parse(caCert.notAfter) - 10 * DAY;
    const late = await ca.issueDeviceCertificate({ validityDays: 365 });
    expect(late.notAfter).toBe(caCert.notAfter);

    now = Date.parse(caCert.notAfter) + DAY;
    await expectPkiError(
      () => ca.issueDeviceCertificate(),
      PKI_ERROR_CODES.caExpired,
      /valid from .* to /,
      500,
    );
  });

  it('removes temp files a crashed writer left, but not ones that may still be in use', async () => {
    await loadOrCreateCa(dir);
    const stale = join(dir, '.ca.key.4242.0123456789ab.tmp');
    const fresh = join(dir, '.ca.pem.4243.0123456789ab.tmp');
    await writeFile(stale, 'half a key', { mode: 0o600 });
    await writeFile(fresh, 'a certificate being written');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(stale, anHourAgo, anHourAgo);
    await loadOrCreateCa(dir);
    expect((await readdir(dir)).sort()).toEqual(['.ca.pem.4243.0123456789ab.tmp', 'ca.key', 'ca.pem']);
  });

  it('reports a CA directory it cannot create', async () => {
    await writeFile(join(root, 'occupied'), 'a file, not a directory');
    await expectPkiError(
      () => loadOrCreateCa(join(root, 'occupied', 'pki')),
      PKI_ERROR_CODES.caInvalid,
      /cannot use .*occupied.* as the CA directory/,
      500,
    );
  });

  it('refuses a CA name it cannot put in a certificate', async () => {
    await expectPkiError(
      () => loadOrCreateCa(dir, { commonName: 'x'.repeat(65) }),
      PKI_ERROR_CODES.invalidOptions,
      /at most 64 characters/,
    );
  });
});

import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertificateAuthority,
  isSignedBy,
  loadOrCreateCa,
  PKI_ERROR_CODES,
  parseCertificatePem,
} from '../../src/pki/index.js';
import { expectPkiError, makeTempDir, normalizeFingerprint } from './helpers.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

describe('issueServerCertificate', () => {
  let ca: CertificateAuthority;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const temp = await makeTempDir();
    cleanup = temp.cleanup;
    ca = await loadOrCreateCa(temp.dir);
  });
  afterAll(async () => {
    await cleanup();
  });

  it('names every DNS name and IP address in the SAN and chains to the CA', async () => {
    const server = await ca.issueServerCertificate({
      commonName: 'us-east',
      dnsNames: ['mqtt.iot.test', 'api.iot.test', 'us-east'],
      ipAddresses: ['127.0.0.11', '::1'],
    });
    const cert = new X509Certificate(server.certificatePem);
    expect(cert.subjectAltName).toBe(
      'DNS:mqtt.iot.test, DNS:api.iot.test, DNS:us-east, IP Address:127.0.0.11, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(cert.checkHost('mqtt.iot.test')).toBe('mqtt.iot.test');
    expect(cert.checkHost('api.iot.test')).toBe('api.iot.test');
    expect(cert.checkHost('us-east')).toBe('us-east');
    expect(cert.checkHost('evil.iot.test')).toBeUndefined();
    expect(cert.checkIP('127.0.0.11')).toBe('127.0.0.11');
    expect(cert.checkIP('127.0.0.12')).toBeUndefined();

    const caCert = new X509Certificate(ca.certificatePem);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual([SERVER_AUTH]);
    expect(await isSignedBy(server.certificatePem, ca.certificatePem)).toBe(true);

    expect(server.certificateId).toBe(normalizeFingerprint(cert.fingerprint256));
    expect(server.issuer).toBe(ca.subject);
    expect(server.subject).toBe('CN=us-east');
    expect(server.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
    expect(server.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const days = (Date.parse(server.notAfter) - Date.parse(server.notBefore)) / 86_400_000;
    expect(Math.round(days * 1440)).toBe(397 * 1440 + 1); // 397 days from now, plus the minute of skew
  });

  it('gives every certificate a different random serial number', async () => {
    const opts = { commonName: 'x', dnsNames: ['x.test'], ipAddresses: [] };
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add((await ca.issueServerCertificate(opts)).serialNumber);
    expect(serials.size).toBe(5);
  });

  it('honours validityDays', async () => {
    const server = await ca.issueServerCertificate({
      commonName: 'short',
      dnsNames: ['short.test'],
      ipAddresses: ['10.0.0.1'],
      validityDays: 7,
    });
    const parsed = parseCertificatePem(server.certificatePem);
    expect(Date.parse(parsed.notAfter) - Date.parse(parsed.notBefore)).toBe(7 * 86_400_000 + 60_000);
  });

  it('refuses names that cannot be in a SAN, naming each bad field', async () => {
    const error = await expectPkiError(
      () =>
        ca.issueServerCertificate({
          commonName: 'bad',
          dnsNames: ['ok.test', 'bad name!', '-lead.test'],
          ipAddresses: ['127.0.0.1', '999.1.1.1'],
        }),
      PKI_ERROR_CODES.invalidOptions,
      /"bad name!" is not a valid DNS name.*"999\.1\.1\.1" is not a valid IP address/,
    );
    expect(error.issues.map((i) => i.path)).toEqual(['dnsNames.1', 'dnsNames.2', 'ipAddresses.1']);
  });

  it('refuses a server certificate without any name, and a nonsensical validity', async () => {
    await expectPkiError(
      () => ca.issueServerCertificate({ commonName: 'nameless', dnsNames: [], ipAddresses: [] }),
      PKI_ERROR_CODES.invalidOptions,
      /at least one DNS name or IP address/,
    );
    await expectPkiError(
      () =>
        ca.issueServerCertificate({
          commonName: 'x',
          dnsNames: ['x.test'],
          ipAddresses: [],
          validityDays: 0,
        }),
      PKI_ERROR_CODES.invalidOptions,
      /validityDays must be a whole number of days/,
    );
  });
});

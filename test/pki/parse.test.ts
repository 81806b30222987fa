import { createHash, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertificateAuthority,
  certificateIdOf,
  isSignedBy,
  loadOrCreateCa,
  PKI_ERROR_CODES,
  parseCertificatePem,
  parseCsrPem,
  x509,
} from '../../src/pki/index.js';
import { expectPkiError, makeCsr, makeSelfSigned, makeTempDir } from './helpers.js';

const { invalidCertificate, invalidCsr, unsupportedKey } = PKI_ERROR_CODES;

/** Re-wraps DER bytes under a PEM label, for inputs a real tool could produce by mistake. */
const wrap = (der: ArrayBuffer | Uint8Array, label: string) => x509.PemConverter.encode(der, label);
const derOf = (pem: string) => new Uint8Array(x509.PemConverter.decodeFirst(pem));

describe('parsing certificates and CSRs', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let devicePem: string;
  let devicePrivateKeyPem: string;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    const [a, b] = [await makeTempDir(), await makeTempDir()];
    cleanups.push(a.cleanup, b.cleanup);
    ca = await loadOrCreateCa(a.dir);
    otherCa = await loadOrCreateCa(b.dir);
    const device = await ca.issueDeviceCertificate({ commonName: 'sensor-1' });
    devicePem = device.certificatePem;
    devicePrivateKeyPem = device.privateKeyPem;
  });
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  describe('parseCertificatePem', () => {
    it('reports what a user needs to know about a certificate', () => {
      const parsed = parseCertificatePem(devicePem);
      const openssl = new X509Certificate(devicePem);
      expect(parsed).toEqual({
        certificateId: createHash('sha256').update(openssl.raw).digest('hex'),
        certificatePem: devicePem,
        subject: 'CN=sensor-1',
        issuer: ca.subject,
        serialNumber: openssl.serialNumber.toLowerCase(),
        notBefore: new Date(openssl.validFrom).toISOString(),
        notAfter: new Date(openssl.validTo).toISOString(),
        isCa: false,
        keyAlgorithm: 'EC P-256',
      });
      expect(certificateIdOf(devicePem)).toBe(parsed.certificateId);
    });

    it('normalizes line endings, wrapping and surrounding text to one canonical PEM', () => {
      const body = Buffer.from(derOf(devicePem)).toString('base64');
      const messy = `subject=CN=sensor-1\r\n-----BEGIN CERTIFICATE-----\r\n${body}\r\n-----END CERTIFICATE-----\r\n\r\n`;
      const parsed = parseCertificatePem(messy);
      expect(parsed.certificatePem).toBe(devicePem);
      expect(parsed.certificateId).toBe(certificateIdOf(devicePem));
    });

    it('reads RSA 2048 and EC P-384 keys', async () => {
      expect(parseCertificatePem(await makeSelfSigned({ kind: 'rsa', bits: 2048 })).keyAlgorithm).toBe(
        'RSA 2048',
      );
      expect(parseCertificatePem(await makeSelfSigned({ kind: 'ec', curve: 'P-384' })).keyAlgorithm).toBe(
        'EC P-384',
      );
    });

    it('refuses text that is not PEM', async () => {
      await expectPkiError(() => parseCertificatePem('hello world'), invalidCertificate, /not PEM/);
      await expectPkiError(() => parseCertificatePem(''), invalidCertificate, /not PEM/);
      await expectPkiError(
        () => parseCertificatePem(42 as unknown as string),
        invalidCertificate,
        /expected a certificate as PEM text, got number/,
      );
    });

    it('refuses a private key, and says never to send one', async () => {
      await expectPkiError(
        () => parseCertificatePem(devicePrivateKeyPem),
        invalidCertificate,
        /expected a certificate .* but got a private key .*never send a private key/,
      );
    });

    it('refuses a CSR passed as a certificate, under either label', async () => {
      const { csrPem } = await makeCsr('CN=sensor-2');
      await expectPkiError(
        () => parseCertificatePem(csrPem),
        invalidCertificate,
        /but got a certificate signing request \(CSR\)/,
      );
      await expectPkiError(
        () => parseCertificatePem(wrap(derOf(csrPem), 'CERTIFICATE')),
        invalidCertificate,
        /holds a certificate signing request \(CSR\), not a certificate/,
      );
    });

    it('refuses two certificates', async () => {
      await expectPkiError(
        () => parseCertificatePem(`${devicePem}${ca.certificatePem}`),
        invalidCertificate,
        /holds 2 "CERTIFICATE" blocks; pass exactly one/,
      );
    });

    it('refuses a certificate bundled with its key', async () => {
      await expectPkiError(
        () => parseCertificatePem(`${devicePem}${devicePrivateKeyPem}`),
        invalidCertificate,
        /holds a private key besides the certificate/,
      );
    });

    it('refuses damaged PEM and DER', async () => {
      const der = derOf(devicePem);
      await expectPkiError(
        () => parseCertificatePem(devicePem.replace('-----END CERTIFICATE-----\n', '')),
        invalidCertificate,
        /incomplete: .* no matching "-----END CERTIFICATE-----"/,
      );
      await expectPkiError(
        () => parseCertificatePem(devicePem.replace(/\n[A-Za-z0-9+/]{4}/, '\n!!!!')),
        invalidCertificate,
        /not valid base64/,
      );
      await expectPkiError(
        () => parseCertificatePem(wrap(der.subarray(0, der.length - 20), 'CERTIFICATE')),
        invalidCertificate,
        /does not hold a DER-encoded X\.509 certificate/,
      );
      await expectPkiError(
        () => parseCertificatePem(wrap(Buffer.concat([der, Buffer.from([0, 0, 0])]), 'CERTIFICATE')),
        invalidCertificate,
        /3 unexpected bytes after the certificate/,
      );
    });

    it('refuses an RSA 1024 key as unsupported', async () => {
      const weak = await makeSelfSigned({ kind: 'rsa', bits: 1024 });
      const error = await expectPkiError(
        () => parseCertificatePem(weak),
        unsupportedKey,
        /key is RSA 1024; iotdr accepts EC P-256, EC P-384 or RSA of at least 2048 bits/,
      );
      expect(error.details.keyAlgorithm).toBe('RSA 1024');
      // Identifying a certificate does not judge its key.
      expect(certificateIdOf(weak)).toMatch(/^[0-9a-f]{64}$/);
    });

    it('refuses garbage in certificateIdOf too', async () => {
      await expectPkiError(() => certificateIdOf('garbage'), invalidCertificate, /not PEM/);
    });
  });

  describe('parseCsrPem', () => {
    it('returns the subject and key of a well-formed CSR', async () => {
      expect(await parseCsrPem((await makeCsr('CN=sensor-3, O=Acme')).csrPem)).toEqual({
        subject: 'CN=sensor-3, O=Acme',
        keyAlgorithm: 'EC P-256',
      });
      expect(await parseCsrPem((await makeCsr('CN=big', { kind: 'ec', curve: 'P-384' })).csrPem)).toEqual({
        subject: 'CN=big',
        keyAlgorithm: 'EC P-384',
      });
    });

    it('refuses a CSR whose signature was tampered with, in parse and in signCsr', async () => {
      const der = derOf((await makeCsr('CN=sensor-4')).csrPem);
      const last = der.length - 1;
      der[last] = (der[last] ?? 0) ^ 0x01;
      const tampered = wrap(der, 'CERTIFICATE REQUEST');
      await expectPkiError(() => parseCsrPem(tampered), invalidCsr, /signature does not verify/);
      await expectPkiError(() => ca.signCsr(tampered), invalidCsr, /signature does not verify/);
    });

    it('refuses an RSA 1024 key, in parse and in signCsr', async () => {
      const { csrPem } = await makeCsr('CN=weak', { kind: 'rsa', bits: 1024 });
      await expectPkiError(() => parseCsrPem(csrPem), unsupportedKey, /CSR's key is RSA 1024/);
      await expectPkiError(() => ca.signCsr(csrPem), unsupportedKey, /CSR's key is RSA 1024/);
    });

    it('refuses what is not a CSR', async () => {
      await expectPkiError(() => parseCsrPem('garbage'), invalidCsr, /not PEM/);
      await expectPkiError(() => parseCsrPem(devicePem), invalidCsr, /but got a certificate/);
      await expectPkiError(
        () => parseCsrPem(wrap(derOf(devicePem), 'CERTIFICATE REQUEST')),
        invalidCsr,
        /does not hold a DER-encoded PKCS#10 request/,
      );
    });
  });

  describe('signCsr', () => {
    it('copies the subject, signs for clientAuth and ignores requested extensions', async () => {
      const { csrPem } = await makeCsr('CN=sensor-5, O=Acme');
      const issued = await ca.signCsr(csrPem, { validityDays: 30 });
      const cert = new X509Certificate(issued.certificatePem);
      expect(issued.subject).toBe('CN=sensor-5, O=Acme');
      expect(issued.issuer).toBe(ca.subject);
      expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
      expect(cert.ca).toBe(false);
      expect(Date.parse(issued.notAfter) - Date.parse(issued.notBefore)).toBe(30 * 86_400_000 + 60_000);
      expect(await isSignedBy(issued.certificatePem, ca.certificatePem)).toBe(true);
    });

    it('names a device with an empty CSR subject after its public key', async () => {
      const { csrPem } = await makeCsr(undefined);
      const issued = await ca.signCsr(csrPem);
      const spki = new x509.Pkcs10CertificateRequest(csrPem).publicKey.rawData;
      const keyHash = createHash('sha256').update(new Uint8Array(spki)).digest('hex');
      expect(issued.subject).toBe(`CN=${keyHash}`);
    });

    it('refuses a nonsensical validity before looking at the CSR', async () => {
      await expectPkiError(
        () => ca.signCsr('garbage', { validityDays: 1.5 }),
        PKI_ERROR_CODES.invalidOptions,
        /validityDays/,
      );
    });
  });

  describe('isSignedBy', () => {
    it('is true only for the CA that signed', async () => {
      expect(await isSignedBy(devicePem, ca.certificatePem)).toBe(true);
      expect(await isSignedBy(ca.certificatePem, ca.certificatePem)).toBe(true);
      // Same subject as `ca`, different key: the signature decides.
      expect(otherCa.subject).toBe(ca.subject);
      expect(await isSignedBy(devicePem, otherCa.certificatePem)).toBe(false);
      // A device did not sign the CA.
      expect(await isSignedBy(ca.certificatePem, devicePem)).toBe(false);
    });

    it('refuses inputs that are not certificates', async () => {
      await expectPkiError(() => isSignedBy('garbage', ca.certificatePem), invalidCertificate, /not PEM/);
    });
  });
});

import { webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { IotdrError } from '../../src/common/index.js';
import { x509 } from '../../src/pki/index.js';

/** A fresh directory under the OS temp dir; the returned function removes it. */
export async function makeTempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-pki-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export type KeySpec = { kind: 'ec'; curve: 'P-256' | 'P-384' } | { kind: 'rsa'; bits: number };

function algorithms(spec: KeySpec) {
  return spec.kind === 'ec'
    ? { gen: { name: 'ECDSA', namedCurve: spec.curve }, sign: { name: 'ECDSA', hash: 'SHA-256' } }
    : {
        gen: {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: spec.bits,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        sign: { name: 'RSASSA-PKCS1-v1_5' },
      };
}

/** A device-side key pair and CSR, made the way a device would make them. */
export async function makeCsr(
  name: string | undefined,
  spec: KeySpec = { kind: 'ec', curve: 'P-256' },
): Promise<{ csrPem: string; privateKeyPem: string }> {
  const alg = algorithms(spec);
  const keys = (await webcrypto.subtle.generateKey(alg.gen, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(name === undefined ? {} : { name }),
    keys,
    signingAlgorithm: alg.sign,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { csrPem: csr.toString('pem'), privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/** A self-signed certificate for an arbitrary key, e.g. one the PKI must refuse. */
export async function makeSelfSigned(spec: KeySpec, name = 'CN=outsider'): Promise<string> {
  const alg = algorithms(spec);
  const keys = (await webcrypto.subtle.generateKey(alg.gen, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    signingAlgorithm: alg.sign,
  });
  return cert.toString('pem');
}

/** Asserts `run` fails with a PkiError-shaped error: the code, status 400 and a message matching `message`. */
export async function expectPkiError(
  run: () => unknown,
  code: string,
  message: RegExp,
  status = 400,
): Promise<IotdrError> {
  let caught: unknown;
  try {
    await run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(IotdrError);
  const error = caught as IotdrError;
  expect(error.name).toBe('PkiError');
  expect({ code: error.code, status: error.status }).toEqual({ code, status });
  expect(error.message).toMatch(message);
  return error;
}

/** node:tls reports fingerprints as colon-separated uppercase hex; certificate ids are plain lowercase hex. */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.replaceAll(':', '').toLowerCase();
}

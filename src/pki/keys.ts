import { createPrivateKey, createPublicKey, type KeyObject, type webcrypto } from 'node:crypto';
import { toPem } from './pem.js';
import { subtle } from './x509.js';

/** Key types the PKI accepts, for certificates it signs and certificates it is given. */
export const SUPPORTED_KEYS_TEXT = 'EC P-256, EC P-384 or RSA of at least 2048 bits';
export const MIN_RSA_BITS = 2048;

export interface KeyDescription {
  /** Human-readable algorithm, e.g. 'EC P-256', 'RSA 2048', 'ED25519'. */
  label: string;
  supported: boolean;
  kind: 'ec' | 'rsa' | 'other';
  /** WebCrypto curve name for EC keys. */
  namedCurve?: 'P-256' | 'P-384';
}

const CURVES: Record<string, 'P-256' | 'P-384'> = { prime256v1: 'P-256', secp384r1: 'P-384' };

export function describeKey(key: KeyObject): KeyDescription {
  const type = key.asymmetricKeyType ?? 'unknown';
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    const curve = details.namedCurve ?? 'unknown curve';
    const namedCurve = CURVES[curve];
    return namedCurve
      ? { label: `EC ${namedCurve}`, supported: true, kind: 'ec', namedCurve }
      : { label: `EC ${curve}`, supported: false, kind: 'ec' };
  }
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    return { label: `RSA ${bits}`, supported: bits >= MIN_RSA_BITS, kind: 'rsa' };
  }
  if (type === 'rsa-pss') {
    return { label: `RSA-PSS ${details.modulusLength ?? 0}`, supported: false, kind: 'other' };
  }
  return { label: type.toUpperCase(), supported: false, kind: 'other' };
}

/** Describes a SubjectPublicKeyInfo; undefined when node:crypto cannot decode it at all. */
export function describeSpki(spki: ArrayBuffer | Uint8Array): KeyDescription | undefined {
  try {
    const der = Buffer.from(spki instanceof Uint8Array ? spki : new Uint8Array(spki));
    return describeKey(createPublicKey({ key: der, format: 'der', type: 'spki' }));
  } catch {
    return undefined;
  }
}

export function spkiOf(key: KeyObject): Buffer {
  return createPublicKey(key).export({ format: 'der', type: 'spki' });
}

/** A private key ready to sign certificates, with the WebCrypto algorithm that goes with it. */
export interface SigningKey {
  key: webcrypto.CryptoKey;
  algorithm: { name: string; hash: string };
  description: KeyDescription;
}

/** Imports a private key (PKCS#8, SEC1 or PKCS#1 PEM) for signing; throws a plain Error with the reason. */
export async function importSigningKey(pem: string): Promise<SigningKey> {
  const keyObject = createPrivateKey({ key: pem, format: 'pem' });
  const description = describeKey(keyObject);
  if (!description.supported) {
    throw new Error(`the key is ${description.label}; a CA key must be ${SUPPORTED_KEYS_TEXT}`);
  }
  const pkcs8 = keyObject.export({ format: 'der', type: 'pkcs8' });
  if (description.kind === 'ec' && description.namedCurve) {
    const hash = description.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256';
    const key = await subtle.importKey(
      'pkcs8',
      pkcs8,
      { name: 'ECDSA', namedCurve: description.namedCurve },
      false,
      ['sign'],
    );
    return { key, algorithm: { name: 'ECDSA', hash }, description };
  }
  const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const key = await subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
  return { key, algorithm, description };
}

export interface GeneratedKeyPair {
  keys: webcrypto.CryptoKeyPair;
  privateKeyPem: string;
  publicKeyPem: string;
}

/** A fresh ECDSA P-256 key pair; the PEMs are PKCS#8 and SubjectPublicKeyInfo. */
export async function generateP256(): Promise<GeneratedKeyPair> {
  const keys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const [pkcs8, spki] = await Promise.all([
    subtle.exportKey('pkcs8', keys.privateKey),
    subtle.exportKey('spki', keys.publicKey),
  ]);
  return { keys, privateKeyPem: toPem(pkcs8, 'PRIVATE KEY'), publicKeyPem: toPem(spki, 'PUBLIC KEY') };
}

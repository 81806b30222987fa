import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { FieldIssue } from '../common/index.js';
import { caExpired, invalidOptions } from './errors.js';
import type { SigningKey } from './keys.js';
import { type DecodedCertificate, decodeCertificate } from './parse.js';
import { CERTIFICATE_LABEL, toPem } from './pem.js';
import { x509 } from './x509.js';

const DAY_MS = 86_400_000;
/** Tolerated clock skew between the CA and whoever checks its certificates. */
export const CLOCK_SKEW_MS = 60_000;
export const DEFAULT_DEVICE_VALIDITY_DAYS = 365;
/** The CA/Browser Forum ceiling, so the broker certificate also satisfies strict TLS clients. */
export const DEFAULT_SERVER_VALIDITY_DAYS = 397;
export const CA_VALIDITY_DAYS = 3652;
export const MAX_LEAF_VALIDITY_DAYS = 3650;
/** RFC 5280 ub-common-name. */
const MAX_COMMON_NAME = 64;
const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** 16 random bytes, high bit clear so the DER INTEGER stays positive, next bit set so it stays 16 bytes long. */
export function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

export function checkValidityDays(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_LEAF_VALIDITY_DAYS) {
    throw invalidOptions(`validityDays must be a whole number of days from 1 to ${MAX_LEAF_VALIDITY_DAYS}`, [
      {
        path: 'validityDays',
        message: `expected an integer 1..${MAX_LEAF_VALIDITY_DAYS}, got ${String(value)}`,
      },
    ]);
  }
  return value;
}

export function checkCommonName(value: unknown, path = 'commonName'): string {
  const bad = (message: string) => invalidOptions(`${path} ${message}`, [{ path, message }]);
  if (typeof value !== 'string') throw bad('must be a string');
  if (value.trim().length === 0) throw bad('must not be empty');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(value)) throw bad('must not contain control characters');
  if (value.length > MAX_COMMON_NAME) throw bad(`must be at most ${MAX_COMMON_NAME} characters (RFC 5280)`);
  return value;
}

function isDnsName(name: string): boolean {
  if (name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((label, i) => (i === 0 && label === '*' && labels.length > 2) || DNS_LABEL.test(label));
}

/** Validates and de-duplicates the SAN entries of a server certificate. */
export function subjectAltNames(dnsNames: unknown, ipAddresses: unknown): x509.JsonGeneralNames {
  const issues: FieldIssue[] = [];
  const names: x509.JsonGeneralNames = [];
  const seen = new Set<string>();
  const take = (
    field: string,
    noun: string,
    list: unknown,
    check: (v: string) => x509.JsonGeneralName | undefined,
  ) => {
    if (!Array.isArray(list)) {
      issues.push({ path: field, message: 'must be an array of strings' });
      return;
    }
    list.forEach((entry: unknown, i) => {
      const name = typeof entry === 'string' ? check(entry.trim()) : undefined;
      if (name === undefined) {
        issues.push({
          path: `${field}.${i}`,
          message: `${JSON.stringify(entry)} is not a valid ${noun}`,
        });
      } else if (!seen.has(`${name.type}:${name.value}`)) {
        seen.add(`${name.type}:${name.value}`);
        names.push(name);
      }
    });
  };
  take('dnsNames', 'DNS name', dnsNames, (v) => {
    const lower = v.toLowerCase();
    return isDnsName(lower) ? { type: 'dns', value: lower } : undefined;
  });
  take('ipAddresses', 'IP address', ipAddresses, (v) =>
    isIP(v) === 0 ? undefined : { type: 'ip', value: v },
  );
  if (issues.length > 0) {
    throw invalidOptions(
      `invalid subject alternative names: ${issues.map((i) => i.message).join('; ')}`,
      issues,
    );
  }
  if (names.length === 0) {
    throw invalidOptions('a server certificate needs at least one DNS name or IP address', [
      { path: 'dnsNames', message: 'give at least one DNS name or IP address' },
    ]);
  }
  return names;
}

const floorToSecond = (ms: number): number => Math.floor(ms / 1000) * 1000;

export interface Issuer {
  cert: x509.X509Certificate;
  signing: SigningKey;
  now: () => number;
}

export interface LeafRequest {
  subject: x509.Name;
  publicKey: x509.PublicKey;
  /** True for RSA keys, which also need keyEncipherment for TLS 1.2 RSA key exchange. */
  rsa: boolean;
  validityDays: number;
  /** A site certificate is both: its process serves its API and calls its peers'. */
  usage: 'client' | 'server' | 'site';
  subjectAltNames?: x509.JsonGeneralNames;
}

/** Signs an end-entity certificate (never a CA) inside the issuer's own validity period. */
export async function issueLeaf(issuer: Issuer, req: LeafRequest): Promise<DecodedCertificate> {
  const now = issuer.now();
  const caNotBefore = issuer.cert.notBefore.getTime();
  const caNotAfter = issuer.cert.notAfter.getTime();
  if (now < caNotBefore || now >= caNotAfter) {
    const [from, to] = [issuer.cert.notBefore.toISOString(), issuer.cert.notAfter.toISOString()];
    throw caExpired(
      `the CA certificate is valid from ${from} to ${to}, so certificates it signs now would not be trusted; check the clock or replace the CA`,
      from,
      to,
    );
  }
  const notBefore = new Date(Math.max(floorToSecond(now - CLOCK_SKEW_MS), caNotBefore));
  const notAfter = new Date(Math.min(floorToSecond(now + req.validityDays * DAY_MS), caNotAfter));
  const ski = issuer.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | (req.rsa ? x509.KeyUsageFlags.keyEncipherment : 0),
      true,
    ),
    new x509.ExtendedKeyUsageExtension(
      req.usage === 'site'
        ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
        : [req.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
    ),
    await x509.SubjectKeyIdentifierExtension.create(req.publicKey),
    ski
      ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
      : await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey),
  ];
  if (req.subjectAltNames) extensions.push(new x509.SubjectAlternativeNameExtension(req.subjectAltNames));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: req.subject,
    issuer: issuer.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: req.publicKey,
    signingKey: issuer.signing.key,
    signingAlgorithm: issuer.signing.algorithm,
    extensions,
  });
  return decodeCertificate(toPem(cert.rawData, CERTIFICATE_LABEL));
}

/** A self-signed root: basicConstraints cA (path length 0), keyCertSign + cRLSign, ~10 years. */
export async function createCaCertificate(
  keys: { privateKey: SigningKey; publicKey: x509.PublicKey },
  commonName: string,
  now: number,
): Promise<x509.X509Certificate> {
  const notBefore = new Date(floorToSecond(now - CLOCK_SKEW_MS));
  const notAfter = new Date(floorToSecond(now + CA_VALIDITY_DAYS * DAY_MS));
  const name = new x509.Name([{ CN: [commonName] }]);
  const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: name,
    issuer: name,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey.key,
    signingAlgorithm: keys.privateKey.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
      new x509.AuthorityKeyIdentifierExtension(ski.keyId),
    ],
  });
}

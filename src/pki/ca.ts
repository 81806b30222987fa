import { createPrivateKey, createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { IotdrError } from '../common/index.js';
import { verifyCsr } from './csr.js';
import { caInvalid, invalidOptions } from './errors.js';
import {
  checkCommonName,
  checkValidityDays,
  createCaCertificate,
  DEFAULT_DEVICE_VALIDITY_DAYS,
  DEFAULT_SERVER_VALIDITY_DAYS,
  type Issuer,
  issueLeaf,
  subjectAltNames,
} from './issue.js';
import { describeSpki, generateP256, importSigningKey, type SigningKey, spkiOf } from './keys.js';
import {
  certificateFields,
  type DecodedCertificate,
  decodeCertificate,
  isCaCertificate,
  sha256Hex,
} from './parse.js';
import { CERTIFICATE_LABEL, toPem } from './pem.js';
import { describeSite, isSiteKind, SITE_KINDS, SITE_NAME_PATTERN, siteUri } from './site.js';
import {
  ensurePrivateDir,
  exists,
  publishExclusive,
  readIfExists,
  removeStaleTemps,
  tightenKeyMode,
} from './store.js';
import type {
  CertificateAuthority,
  DeviceCertificateOptions,
  GeneratedDeviceCertificate,
  IssuedCertificate,
  LoadOrCreateCaOptions,
  ServerCertificate,
  ServerCertificateOptions,
  SignCsrOptions,
  SiteCertificateOptions,
} from './types.js';
import { x509 } from './x509.js';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca.key';
export const DEFAULT_CA_COMMON_NAME = 'iotdr CA';

const commonNameOnly = (cn: string) => new x509.Name([{ CN: [cn] }]);
/** Subject for a key whose holder gave no name: the key's own fingerprint, stable across renewals. */
const keyFingerprintName = (publicKey: x509.PublicKey) =>
  commonNameOnly(sha256Hex(new Uint8Array(publicKey.rawData)));

class EmbeddedCertificateAuthority implements CertificateAuthority {
  readonly certificatePem: string;
  readonly certificateId: string;
  readonly subject: string;
  readonly #issuer: Issuer;

  constructor(decoded: DecodedCertificate, issuer: Issuer) {
    this.certificatePem = decoded.certificatePem;
    this.certificateId = decoded.certificateId;
    this.subject = decoded.cert.subject;
    this.#issuer = issuer;
  }

  async issueServerCertificate(opts: ServerCertificateOptions): Promise<ServerCertificate> {
    if (typeof opts !== 'object' || opts === null) {
      throw invalidOptions('server certificate options are required', [
        { path: '(root)', message: 'expected an object' },
      ]);
    }
    const commonName = checkCommonName(opts.commonName);
    const names = subjectAltNames(opts.dnsNames, opts.ipAddresses);
    const validityDays = checkValidityDays(opts.validityDays, DEFAULT_SERVER_VALIDITY_DAYS);
    const pair = await generateP256();
    const decoded = await issueLeaf(this.#issuer, {
      subject: commonNameOnly(commonName),
      publicKey: await x509.PublicKey.create(pair.keys.publicKey),
      rsa: false,
      validityDays,
      usage: 'server',
      subjectAltNames: names,
    });
    return { ...certificateFields(decoded), privateKeyPem: pair.privateKeyPem };
  }

  async issueSiteCertificate(opts: SiteCertificateOptions): Promise<ServerCertificate> {
    const site = opts?.site;
    if (
      typeof site !== 'object' ||
      site === null ||
      !isSiteKind(String(site.kind)) ||
      typeof site.name !== 'string' ||
      !SITE_NAME_PATTERN.test(site.name)
    ) {
      throw invalidOptions('a site certificate names a site: a kind and a name', [
        {
          path: 'site',
          message: `expected { kind: ${SITE_KINDS.join(' | ')}, name: ${SITE_NAME_PATTERN} }`,
        },
      ]);
    }
    // A site that serves nothing (a remote checker) has its URI only.
    const serves = (opts.dnsNames?.length ?? 0) + (opts.ipAddresses?.length ?? 0) > 0;
    const names = [
      { type: 'url', value: siteUri(site) },
      ...(serves ? subjectAltNames(opts.dnsNames, opts.ipAddresses) : []),
    ];
    const validityDays = checkValidityDays(opts.validityDays, DEFAULT_SERVER_VALIDITY_DAYS);
    const pair = await generateP256();
    const decoded = await issueLeaf(this.#issuer, {
      subject: commonNameOnly(checkCommonName(`iotdr ${describeSite(site)}`)),
      publicKey: await x509.PublicKey.create(pair.keys.publicKey),
      rsa: false,
      validityDays,
      usage: 'site',
      subjectAltNames: names as x509.JsonGeneralNames,
    });
    return { ...certificateFields(decoded), privateKeyPem: pair.privateKeyPem };
  }

  async signCsr(csrPem: string, opts: SignCsrOptions = {}): Promise<IssuedCertificate> {
    const validityDays = checkValidityDays(opts.validityDays, DEFAULT_DEVICE_VALIDITY_DAYS);
    const { csr } = await verifyCsr(csrPem);
    const { publicKey } = csr;
    const decoded = await issueLeaf(this.#issuer, {
      subject: csr.subjectName.toJSON().length > 0 ? csr.subjectName : keyFingerprintName(publicKey),
      publicKey,
      rsa: describeSpki(publicKey.rawData)?.kind === 'rsa',
      validityDays,
      usage: 'client',
    });
    return certificateFields(decoded);
  }

  async issueDeviceCertificate(opts: DeviceCertificateOptions = {}): Promise<GeneratedDeviceCertificate> {
    const validityDays = checkValidityDays(opts.validityDays, DEFAULT_DEVICE_VALIDITY_DAYS);
    const commonName = opts.commonName === undefined ? undefined : checkCommonName(opts.commonName);
    const pair = await generateP256();
    const publicKey = await x509.PublicKey.create(pair.keys.publicKey);
    const decoded = await issueLeaf(this.#issuer, {
      subject: commonName === undefined ? keyFingerprintName(publicKey) : commonNameOnly(commonName),
      publicKey,
      rsa: false,
      validityDays,
      usage: 'client',
    });
    return {
      ...certificateFields(decoded),
      privateKeyPem: pair.privateKeyPem,
      publicKeyPem: pair.publicKeyPem,
    };
  }
}

const RECOVERY_HINT = 'restore both ca.key and ca.pem from a backup, or move them away to create a new CA';

/** The CA key: the existing one, or a new P-256 key published exclusively (the race loser adopts the winner's). */
async function obtainKeyPem(dir: string): Promise<string> {
  const keyPath = join(dir, CA_KEY_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await readIfExists(keyPath);
    if (existing !== undefined) return existing;
    // The key is always published before the certificate, so a certificate without a key that is
    // still missing after the certificate was seen is an orphan, not a race.
    if (await exists(join(dir, CA_CERT_FILE))) {
      const again = await readIfExists(keyPath);
      if (again !== undefined) return again;
      throw caInvalid(`${join(dir, CA_CERT_FILE)} exists but ${keyPath} does not; ${RECOVERY_HINT}`, keyPath);
    }
    const generated = await generateP256();
    if (await publishExclusive(dir, CA_KEY_FILE, generated.privateKeyPem, 0o600))
      return generated.privateKeyPem;
  }
  throw caInvalid(
    `${keyPath} keeps disappearing while the CA is loaded; is another program deleting it?`,
    keyPath,
  );
}

/** The CA certificate: the existing one, or a new self-signed one for `keyPem`, published exclusively. */
async function obtainCertificatePem(
  dir: string,
  keyPem: string,
  signing: SigningKey,
  commonName: string,
  now: number,
): Promise<string> {
  const certPath = join(dir, CA_CERT_FILE);
  const existing = await readIfExists(certPath);
  if (existing !== undefined) return existing;
  const publicKey = new x509.PublicKey(new Uint8Array(spkiOf(createPrivateKey(keyPem))));
  const cert = await createCaCertificate({ privateKey: signing, publicKey }, commonName, now);
  const pem = toPem(cert.rawData, CERTIFICATE_LABEL);
  if (await publishExclusive(dir, CA_CERT_FILE, pem, 0o644)) return pem;
  const winner = await readIfExists(certPath);
  if (winner === undefined) throw caInvalid(`${certPath} disappeared while the CA was created`, certPath);
  return winner;
}

function checkCaCertificate(certPem: string, keyPem: string, certPath: string): DecodedCertificate {
  let decoded: DecodedCertificate;
  try {
    decoded = decodeCertificate(certPem);
  } catch (cause) {
    const reason = cause instanceof IotdrError ? cause.message : String(cause);
    throw caInvalid(
      `${certPath} is not a usable CA certificate: ${reason}; ${RECOVERY_HINT}`,
      certPath,
      cause,
    );
  }
  if (!isCaCertificate(decoded.cert)) {
    throw caInvalid(
      `${certPath} is not a CA certificate (basicConstraints cA is not set); ${RECOVERY_HINT}`,
      certPath,
    );
  }
  const certKey = createPublicKey({
    key: Buffer.from(decoded.cert.publicKey.rawData),
    format: 'der',
    type: 'spki',
  });
  if (!certKey.equals(createPublicKey(createPrivateKey(keyPem)))) {
    throw caInvalid(
      `${certPath} does not belong to the private key in ${CA_KEY_FILE}; ${RECOVERY_HINT}`,
      certPath,
    );
  }
  return decoded;
}

/**
 * Loads the CA from `dir` (ca.pem, ca.key) or creates it: ECDSA P-256, self-signed, ~10 years.
 * The directory is created 0700, ca.key 0600 (tightened if looser), ca.pem 0644. Each file appears
 * atomically and exclusively, so concurrent callers on one directory all end up with the same CA.
 */
export async function loadOrCreateCa(
  dir: string,
  opts: LoadOrCreateCaOptions = {},
): Promise<CertificateAuthority> {
  const now = opts.now ?? Date.now;
  const commonName = checkCommonName(opts.commonName ?? DEFAULT_CA_COMMON_NAME);
  try {
    await ensurePrivateDir(dir);
    await removeStaleTemps(dir);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw caInvalid(`cannot use ${dir} as the CA directory (${reason})`, dir, cause);
  }
  const keyPath = join(dir, CA_KEY_FILE);
  const keyPem = await obtainKeyPem(dir);
  await tightenKeyMode(keyPath);
  let signing: SigningKey;
  try {
    signing = await importSigningKey(keyPem);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw caInvalid(
      `${keyPath} is not a usable CA private key (${reason}); ${RECOVERY_HINT}`,
      keyPath,
      cause,
    );
  }
  const certPath = join(dir, CA_CERT_FILE);
  const certPem = await obtainCertificatePem(dir, keyPem, signing, commonName, now());
  const decoded = checkCaCertificate(certPem, keyPem, certPath);
  return new EmbeddedCertificateAuthority(decoded, { cert: decoded.cert, signing, now });
}

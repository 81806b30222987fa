/**
 * Device certificates for the initial-sync benchmark, made fast enough for 100,000: real X.509 v3
 * DER, self-signed ECDSA P-256 with SHA-256, each with its own serial number and subject
 * `CN=<thing name>`, each signed. They share one key pair: generating a key per device would add
 * about 8 s and nothing the registry or replication looks at (a certificate's id is the SHA-256 of
 * its DER, which differs per certificate).
 *
 * The DER is assembled here (the TBS from a few fixed parts, then `crypto.sign`), because going
 * through @peculiar/x509 costs about 5 ms per certificate to make and 1.7 ms to parse. `check()`
 * proves a sample against the registry's own parser and OpenSSL.
 */
import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import { parseCertificatePem } from '../../src/pki/index.js';

/** The fields of the registry's certificate document, as `parseCertificatePem` would give them. */
export interface DeviceCertificate {
  certificateId: string;
  certificatePem: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  if (n < 0x10000) return Buffer.from([0x82, n >> 8, n & 0xff]);
  throw new Error(`DER length ${n} too large`);
}

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

/** UTCTime (YYMMDDHHMMSSZ), valid for years 1950–2049. */
function utcTime(date: Date): Buffer {
  const iso = date.toISOString();
  const text = `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return tlv(0x17, Buffer.from(text, 'ascii'));
}

const ECDSA_WITH_SHA256 = tlv(0x30, Buffer.from('06082a8648ce3d040302', 'hex'));
const CN_OID = Buffer.from('0603550403', 'hex');
const VERSION_3 = Buffer.from('a003020102', 'hex');
/** extensions [3] { basicConstraints, critical, cA false } */
const EXTENSIONS = tlv(0xa3, tlv(0x30, tlv(0x30, Buffer.from('0603551d130101ff04023000', 'hex'))));

function name(commonName: string): Buffer {
  return tlv(0x30, tlv(0x31, tlv(0x30, CN_OID, tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

function toPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

export class DeviceCertificateFactory {
  readonly #key: KeyObject;
  readonly #spki: Buffer;
  readonly #validity: Buffer;
  readonly #notBefore: string;
  readonly #notAfter: string;
  /** Serials are 16 bytes: 0x40, 7 random bytes for this run, then the device index. */
  readonly #serialPrefix: Buffer;

  constructor(now = Date.now()) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#key = privateKey;
    this.#spki = publicKey.export({ type: 'spki', format: 'der' });
    const notBefore = new Date(Math.floor((now - 60_000) / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + 365 * 24 * 3600 * 1000);
    this.#validity = tlv(0x30, utcTime(notBefore), utcTime(notAfter));
    this.#notBefore = notBefore.toISOString();
    this.#notAfter = notAfter.toISOString();
    this.#serialPrefix = Buffer.concat([Buffer.from([0x40]), randomBytes(7)]);
  }

  make(index: number, commonName: string): DeviceCertificate {
    const serial = Buffer.alloc(16);
    this.#serialPrefix.copy(serial, 0);
    serial.writeBigUInt64BE(BigInt(index), 8);
    const subject = name(commonName);
    const tbs = tlv(
      0x30,
      VERSION_3,
      tlv(0x02, serial),
      ECDSA_WITH_SHA256,
      subject,
      this.#validity,
      subject,
      this.#spki,
      EXTENSIONS,
    );
    const signature = sign('sha256', tbs, { key: this.#key, dsaEncoding: 'der' });
    const der = tlv(0x30, tbs, ECDSA_WITH_SHA256, tlv(0x03, Buffer.from([0]), signature));
    return {
      certificateId: createHash('sha256').update(der).digest('hex'),
      certificatePem: toPem(der),
      subject: `CN=${commonName}`,
      issuer: `CN=${commonName}`,
      serialNumber: serial.toString('hex'),
      notBefore: this.#notBefore,
      notAfter: this.#notAfter,
    };
  }
}

/**
 * Throws unless the certificate parses with the registry's parser (@peculiar/x509 and OpenSSL),
 * every field the registry stores is what `make` computed, and the signature verifies.
 */
export function checkDeviceCertificate(cert: DeviceCertificate): void {
  const parsed = parseCertificatePem(cert.certificatePem);
  for (const field of [
    'certificateId',
    'certificatePem',
    'subject',
    'issuer',
    'serialNumber',
    'notBefore',
    'notAfter',
  ] as const) {
    if (parsed[field] !== cert[field]) {
      throw new Error(
        `generated certificate: ${field} is ${JSON.stringify(cert[field])}, the registry parses ${JSON.stringify(parsed[field])}`,
      );
    }
  }
  if (parsed.isCa || parsed.keyAlgorithm !== 'EC P-256') {
    throw new Error(`generated certificate parses as isCa=${parsed.isCa}, key ${parsed.keyAlgorithm}`);
  }
  const openssl = new X509Certificate(cert.certificatePem);
  if (!openssl.verify(openssl.publicKey)) throw new Error('generated certificate: signature does not verify');
}

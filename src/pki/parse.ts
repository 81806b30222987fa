import { createHash, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { invalidCertificate, unsupportedKey } from './errors.js';
import { describeSpki, SUPPORTED_KEYS_TEXT } from './keys.js';
import { CERTIFICATE_LABEL, decodeSinglePem, toPem } from './pem.js';
import type { ParsedCertificate } from './types.js';
import { x509 } from './x509.js';

/** A structurally valid certificate: one PEM block, DER both @peculiar/x509 and OpenSSL decode. */
export interface DecodedCertificate {
  der: Buffer;
  cert: x509.X509Certificate;
  certificateId: string;
  certificatePem: string;
}

export function sha256Hex(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

function looksLikeCsr(der: Buffer): boolean {
  try {
    new x509.Pkcs10CertificateRequest(Uint8Array.from(der).buffer);
    return true;
  } catch {
    return false;
  }
}

export function decodeCertificate(pem: unknown): DecodedCertificate {
  const framed = decodeSinglePem(pem, [CERTIFICATE_LABEL], 'certificate');
  if ('problem' in framed) throw invalidCertificate(framed.problem);
  const { der } = framed;
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(Uint8Array.from(der).buffer);
    // The library decodes fields lazily; decode them now so a malformed one is reported here.
    void [cert.subject, cert.issuer, cert.serialNumber, cert.notBefore, cert.notAfter, cert.publicKey];
  } catch (cause) {
    if (looksLikeCsr(der)) {
      throw invalidCertificate(
        'the "CERTIFICATE" block holds a certificate signing request (CSR), not a certificate; submit it as a CSR to be signed',
        cause,
      );
    }
    throw invalidCertificate('the "CERTIFICATE" block does not hold a DER-encoded X.509 certificate', cause);
  }
  // node:tls (OpenSSL) is what will use this certificate, so it must decode it too, byte for byte.
  let openssl: NodeX509Certificate;
  try {
    openssl = new NodeX509Certificate(der);
  } catch (cause) {
    throw invalidCertificate('the certificate DER is malformed (OpenSSL cannot decode it)', cause);
  }
  if (openssl.raw.length !== der.length) {
    throw invalidCertificate(
      `the "CERTIFICATE" block has ${der.length - openssl.raw.length} unexpected bytes after the certificate`,
    );
  }
  return { der, cert, certificateId: sha256Hex(der), certificatePem: toPem(der, CERTIFICATE_LABEL) };
}

/** Lowercase hex SHA-256 of the DER of the one certificate in `pem`. */
export function certificateIdOf(pem: string): string {
  return decodeCertificate(pem).certificateId;
}

export function isCaCertificate(cert: x509.X509Certificate): boolean {
  return cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false;
}

/** Key algorithm of the certificate's public key; throws IOTDR_PKI_UNSUPPORTED_KEY unless supported. */
export function supportedKeyAlgorithm(publicKey: x509.PublicKey, what: string): string {
  const key = describeSpki(publicKey.rawData);
  if (key === undefined) {
    throw unsupportedKey(`${what}'s public key cannot be decoded; use ${SUPPORTED_KEYS_TEXT}`, 'unknown');
  }
  if (!key.supported) {
    throw unsupportedKey(`${what}'s key is ${key.label}; iotdr accepts ${SUPPORTED_KEYS_TEXT}`, key.label);
  }
  return key.label;
}

/** The fields every issued or parsed certificate reports. */
export function certificateFields(decoded: DecodedCertificate) {
  const { cert } = decoded;
  return {
    certificateId: decoded.certificateId,
    certificatePem: decoded.certificatePem,
    subject: cert.subject,
    issuer: cert.issuer,
    serialNumber: cert.serialNumber.toLowerCase(),
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
  };
}

/**
 * Parses exactly one PEM certificate. Throws IOTDR_PKI_INVALID_CERTIFICATE saying what is wrong with
 * the input, or IOTDR_PKI_UNSUPPORTED_KEY for keys other than EC P-256/P-384 and RSA >= 2048.
 */
export function parseCertificatePem(pem: string): ParsedCertificate {
  const decoded = decodeCertificate(pem);
  let isCa: boolean;
  try {
    isCa = isCaCertificate(decoded.cert);
  } catch (cause) {
    throw invalidCertificate('the certificate has a malformed basicConstraints extension', cause);
  }
  const keyAlgorithm = supportedKeyAlgorithm(decoded.cert.publicKey, 'the certificate');
  return { ...certificateFields(decoded), isCa, keyAlgorithm };
}

/**
 * True when `certPem` carries a valid signature by `caPem`'s key and its issuer equals the CA's
 * subject. Validity dates are not checked. Throws IOTDR_PKI_INVALID_CERTIFICATE when either input is
 * not a certificate.
 */
export async function isSignedBy(certPem: string, caPem: string): Promise<boolean> {
  const { cert } = decodeCertificate(certPem);
  const { cert: ca } = decodeCertificate(caPem);
  if (cert.issuer !== ca.subject) return false;
  try {
    return await cert.verify({ publicKey: ca.publicKey, signatureOnly: true });
  } catch {
    // An algorithm WebCrypto cannot verify with this key is no valid signature either.
    return false;
  }
}

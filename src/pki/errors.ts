import { type FieldIssue, PkiError } from '../common/index.js';

/** Stable codes of the PKI's failures; never reused for another meaning. */
export const PKI_ERROR_CODES = {
  /** Input is not exactly one usable PEM X.509 certificate (400). */
  invalidCertificate: 'IOTDR_PKI_INVALID_CERTIFICATE',
  /** A certificate or CSR carries a key other than EC P-256/P-384 or RSA >= 2048 bits (400). */
  unsupportedKey: 'IOTDR_PKI_UNSUPPORTED_KEY',
  /** Input is not one PEM PKCS#10 request with a valid self-signature (400). */
  invalidCsr: 'IOTDR_PKI_INVALID_CSR',
  /** Issuance options (names, validity) are not acceptable (400). */
  invalidOptions: 'IOTDR_PKI_INVALID_OPTIONS',
  /** The CA directory holds files that cannot be used as a CA (500). */
  caInvalid: 'IOTDR_PKI_CA_INVALID',
  /** The CA certificate is outside its validity period, so nothing it signs would be trusted (500). */
  caExpired: 'IOTDR_PKI_CA_EXPIRED',
} as const;

export type PkiErrorCode = (typeof PKI_ERROR_CODES)[keyof typeof PKI_ERROR_CODES];

export function invalidCertificate(message: string, cause?: unknown): PkiError {
  return new PkiError(PKI_ERROR_CODES.invalidCertificate, message, { status: 400, cause });
}

export function invalidCsr(message: string, cause?: unknown): PkiError {
  return new PkiError(PKI_ERROR_CODES.invalidCsr, message, { status: 400, cause });
}

export function unsupportedKey(message: string, keyAlgorithm: string): PkiError {
  return new PkiError(PKI_ERROR_CODES.unsupportedKey, message, { status: 400, details: { keyAlgorithm } });
}

export function invalidOptions(message: string, issues: FieldIssue[]): PkiError {
  return new PkiError(PKI_ERROR_CODES.invalidOptions, message, { status: 400, issues });
}

export function caInvalid(message: string, path: string, cause?: unknown): PkiError {
  return new PkiError(PKI_ERROR_CODES.caInvalid, message, { status: 500, details: { path }, cause });
}

export function caExpired(message: string, notBefore: string, notAfter: string): PkiError {
  return new PkiError(PKI_ERROR_CODES.caExpired, message, { status: 500, details: { notBefore, notAfter } });
}

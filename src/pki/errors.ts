import { type ErrorCatalogue, type FieldIssue, PkiError } from '../common/index.js';

/** Every code the PKI raises; the registry raises the IOTDR_PKI_* codes of registration itself. */
export const PKI_ERRORS = {
  IOTDR_PKI_INVALID_CERTIFICATE: {
    status: 400,
    meaning: 'the input is not exactly one usable PEM X.509 certificate',
  },
  IOTDR_PKI_UNSUPPORTED_KEY: {
    status: 400,
    meaning: 'a certificate or CSR carries a key other than EC P-256/P-384 or RSA of 2048 bits or more',
  },
  IOTDR_PKI_INVALID_CSR: {
    status: 400,
    meaning: 'the input is not one PEM PKCS#10 request with a valid self-signature',
  },
  IOTDR_PKI_INVALID_OPTIONS: { meaning: 'certificate issuance options (names, validity) are not acceptable' },
  IOTDR_PKI_CA_INVALID: {
    meaning: 'the CA directory holds files that cannot be used as a CA; the region does not start',
  },
  IOTDR_PKI_CA_EXPIRED: {
    status: 500,
    meaning: 'the CA certificate is outside its validity period, so nothing it signs would be trusted',
  },
} as const satisfies ErrorCatalogue;

type PkiErrors = typeof PKI_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends PkiErrors {}
}

export type PkiErrorCode = keyof PkiErrors;

/** The PKI's codes by failure, for callers that test for one. */
export const PKI_ERROR_CODES = {
  invalidCertificate: 'IOTDR_PKI_INVALID_CERTIFICATE',
  unsupportedKey: 'IOTDR_PKI_UNSUPPORTED_KEY',
  invalidCsr: 'IOTDR_PKI_INVALID_CSR',
  invalidOptions: 'IOTDR_PKI_INVALID_OPTIONS',
  caInvalid: 'IOTDR_PKI_CA_INVALID',
  caExpired: 'IOTDR_PKI_CA_EXPIRED',
} as const satisfies Record<string, PkiErrorCode>;

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

/** The embedded certificate authority: server and device certificates, certificate and CSR parsing. */

export { CA_CERT_FILE, CA_KEY_FILE, DEFAULT_CA_COMMON_NAME, loadOrCreateCa } from './ca.js';
export { parseCsrPem } from './csr.js';
export type { PkiErrorCode } from './errors.js';
export { PKI_ERROR_CODES, PKI_ERRORS } from './errors.js';
export { DEFAULT_DEVICE_VALIDITY_DAYS, DEFAULT_SERVER_VALIDITY_DAYS } from './issue.js';
export { certificateIdOf, isSignedBy, parseCertificatePem } from './parse.js';
export {
  describeSite,
  isSiteKind,
  parseSiteUri,
  SITE_KINDS,
  SITE_NAME_PATTERN,
  SITE_URI_PREFIX,
  type SiteId,
  type SiteKind,
  siteOfCertificate,
  siteUri,
} from './site.js';
export type {
  CertificateAuthority,
  DeviceCertificateOptions,
  GeneratedDeviceCertificate,
  IssuedCertificate,
  LoadOrCreateCaOptions,
  ParsedCertificate,
  ParsedCsr,
  ServerCertificate,
  ServerCertificateOptions,
  SignCsrOptions,
  SiteCertificateOptions,
} from './types.js';
/** @peculiar/x509, loaded with its Reflect shim and bound to node:crypto's WebCrypto; import it from here, not directly. */
export { x509 } from './x509.js';

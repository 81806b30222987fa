import type { SiteId } from './site.js';

/** A certificate the CA has just signed. */
export interface IssuedCertificate {
  /** Lowercase hex SHA-256 of the certificate DER; equals node:tls `fingerprint256` without colons. */
  certificateId: string;
  certificatePem: string;
  subject: string;
  issuer: string;
  /** Lowercase hex. */
  serialNumber: string;
  /** ISO 8601. */
  notBefore: string;
  /** ISO 8601. */
  notAfter: string;
}

/** A device certificate together with the key pair generated for it. */
export interface GeneratedDeviceCertificate extends IssuedCertificate {
  /** PKCS#8 PEM. Returned once, never stored by the CA. */
  privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM. */
  publicKeyPem: string;
}

/** Certificate and key for a TLS server (MQTT broker, HTTP API). Carries every field of IssuedCertificate too. */
export interface ServerCertificate extends IssuedCertificate {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
}

export interface ServerCertificateOptions {
  commonName: string;
  /** DNS names for the SAN; `*.` wildcards allowed in the leftmost label. */
  dnsNames: string[];
  /** IPv4 or IPv6 addresses for the SAN. */
  ipAddresses: string[];
  /** Lifetime in days; default 397, never past the CA's own notAfter. */
  validityDays?: number;
}

export interface SiteCertificateOptions {
  /** The site the certificate names (one URI subject alternative name, `urn:iotdr:site:<kind>:<name>`). */
  site: SiteId;
  /** DNS names its API answers on. */
  dnsNames: string[];
  /** IPv4 or IPv6 addresses its API answers on. */
  ipAddresses: string[];
  /** Lifetime in days; default 397, never past the CA's own notAfter. */
  validityDays?: number;
}

export interface SignCsrOptions {
  /** Lifetime in days; default 365, never past the CA's own notAfter. */
  validityDays?: number;
}

export interface DeviceCertificateOptions {
  /** Subject CN; default the lowercase hex SHA-256 of the generated public key (SPKI DER). */
  commonName?: string;
  /** Lifetime in days; default 365, never past the CA's own notAfter. */
  validityDays?: number;
}

export interface CertificateAuthority {
  readonly certificatePem: string;
  readonly certificateId: string;
  readonly subject: string;
  /** Broker/API server certificate; SAN carries every dnsName and ipAddress given. ExtendedKeyUsage serverAuth. */
  issueServerCertificate(opts: ServerCertificateOptions): Promise<ServerCertificate>;
  /**
   * A site certificate (docs/security.md): serverAuth and clientAuth, the site's URI and the names
   * and addresses it answers on in the SAN, subject CN `iotdr <kind> <name>`.
   */
  issueSiteCertificate(opts: SiteCertificateOptions): Promise<ServerCertificate>;
  /**
   * Signs a device CSR (PEM) for clientAuth. Verifies the CSR's own signature and key; the subject
   * is copied from the CSR (CN = SHA-256 of the public key when the CSR subject is empty). Extensions
   * requested in the CSR are ignored: the CA decides what a device certificate may do.
   */
  signCsr(csrPem: string, opts?: SignCsrOptions): Promise<IssuedCertificate>;
  /** Generates an ECDSA P-256 key pair and a device certificate for it; the private key is returned, never stored. */
  issueDeviceCertificate(opts?: DeviceCertificateOptions): Promise<GeneratedDeviceCertificate>;
}

export interface LoadOrCreateCaOptions {
  /** Subject CN of a newly created CA; default 'iotdr CA'. Ignored when the CA already exists. */
  commonName?: string;
  /** Wall-clock milliseconds; default Date.now. Drives every notBefore/notAfter. */
  now?: () => number;
}

export interface ParsedCertificate {
  certificateId: string;
  /** Normalized: exactly one CERTIFICATE block, 64-column base64, trailing newline. */
  certificatePem: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  isCa: boolean;
  /** e.g. 'EC P-256', 'RSA 2048'. */
  keyAlgorithm: string;
}

export interface ParsedCsr {
  subject: string;
  /** e.g. 'EC P-256', 'RSA 2048'. */
  keyAlgorithm: string;
}

import { invalidCsr } from './errors.js';
import { supportedKeyAlgorithm } from './parse.js';
import { CSR_LABELS, decodeSinglePem } from './pem.js';
import type { ParsedCsr } from './types.js';
import { x509 } from './x509.js';

export interface VerifiedCsr extends ParsedCsr {
  csr: x509.Pkcs10CertificateRequest;
}

/**
 * Decodes one PEM PKCS#10 request, checks its key (IOTDR_PKI_UNSUPPORTED_KEY) and its
 * self-signature, which proves the requester holds the private key (IOTDR_PKI_INVALID_CSR).
 */
export async function verifyCsr(pem: unknown): Promise<VerifiedCsr> {
  const framed = decodeSinglePem(pem, CSR_LABELS, 'certificate signing request');
  if ('problem' in framed) throw invalidCsr(framed.problem);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(Uint8Array.from(framed.der).buffer);
    void [csr.subject, csr.publicKey];
  } catch (cause) {
    throw invalidCsr('the "CERTIFICATE REQUEST" block does not hold a DER-encoded PKCS#10 request', cause);
  }
  const keyAlgorithm = supportedKeyAlgorithm(csr.publicKey, 'the CSR');
  let valid: boolean;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) {
    throw invalidCsr(
      "the CSR's signature does not verify with its own public key; it was altered or signed with another key — create it again",
    );
  }
  return { csr, subject: csr.subject, keyAlgorithm };
}

/** Parses and verifies a CSR; see verifyCsr for the errors. */
export async function parseCsrPem(pem: string): Promise<ParsedCsr> {
  const { subject, keyAlgorithm } = await verifyCsr(pem);
  return { subject, keyAlgorithm };
}

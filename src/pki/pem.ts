/**
 * PEM text framing (RFC 7468) with messages precise enough for a user to fix their input. Only the
 * textual layer lives here; the DER inside is decoded by @peculiar/x509 and node:crypto.
 */

const BLOCK = /-----BEGIN ([^\r\n-]+)-----([\s\S]*?)-----END ([^\r\n-]+)-----/g;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export const CERTIFICATE_LABEL = 'CERTIFICATE';
export const CSR_LABELS: readonly string[] = ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'];

interface PemBlock {
  label: string;
  endLabel: string;
  body: string;
}

/** What a PEM label holds, in words a user recognises. */
export function describeLabel(label: string): string {
  if (label === CERTIFICATE_LABEL || label === 'TRUSTED CERTIFICATE') return 'a certificate';
  if (CSR_LABELS.includes(label)) return 'a certificate signing request (CSR)';
  if (label.endsWith('PRIVATE KEY')) return 'a private key';
  if (label.endsWith('PUBLIC KEY')) return 'a public key';
  if (label === 'X509 CRL') return 'a certificate revocation list';
  return `a PEM block labelled "${label}"`;
}

function scan(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    blocks.push({ label: m[1] ?? '', body: m[2] ?? '', endLabel: m[3] ?? '' });
  }
  return blocks;
}

/**
 * Extracts the DER of the only block labelled one of `labels` (the first is the canonical one, used
 * in messages); `noun` names the expected object in messages, e.g. 'certificate'. Returns the failure as a sentence instead of throwing, so each caller wraps it in its
 * own error code.
 */
export function decodeSinglePem(
  input: unknown,
  labels: readonly string[],
  noun: string,
): { der: Buffer } | { problem: string } {
  const what = `a ${noun}`;
  const label = labels[0] ?? CERTIFICATE_LABEL;
  const expectedHeader = `-----BEGIN ${label}-----`;
  if (typeof input !== 'string') {
    return { problem: `expected ${what} as PEM text, got ${input === null ? 'null' : typeof input}` };
  }
  const blocks = scan(input);
  if (blocks.length === 0) {
    const begin = /-----BEGIN ([^\r\n-]+)-----/.exec(input);
    if (begin) {
      return {
        problem: `the PEM is incomplete: "-----BEGIN ${begin[1]}-----" has no matching "-----END ${begin[1]}-----" line`,
      };
    }
    return { problem: `not PEM: expected ${what} in text starting with "${expectedHeader}"` };
  }
  const wanted = blocks.filter((b) => labels.includes(b.label));
  const others = blocks.filter((b) => !labels.includes(b.label));
  const first = others[0];
  if (wanted.length === 0 && first !== undefined) {
    const secret = first.label.endsWith('PRIVATE KEY') ? ' (never send a private key anywhere)' : '';
    return {
      problem: `expected ${what} ("${expectedHeader}") but got ${describeLabel(first.label)} ("-----BEGIN ${first.label}-----")${secret}`,
    };
  }
  if (wanted.length > 1) {
    return {
      problem: `the PEM holds ${wanted.length} "${label}" blocks; pass exactly one ${noun} (without its chain)`,
    };
  }
  if (first !== undefined) {
    return {
      problem: `the PEM holds ${describeLabel(first.label)} besides the ${noun}; pass the ${noun} alone`,
    };
  }
  const block = wanted[0];
  if (block === undefined) return { problem: `not PEM: expected ${what}` };
  if (block.endLabel !== block.label) {
    return {
      problem: `the PEM block starts with "-----BEGIN ${block.label}-----" but ends with "-----END ${block.endLabel}-----"`,
    };
  }
  if (block.body.includes(':')) {
    return { problem: `the "${label}" block has PEM headers, which RFC 7468 does not allow here` };
  }
  const base64 = block.body.replace(/\s+/g, '');
  if (base64.length === 0) return { problem: `the "${label}" block is empty` };
  if (!BASE64.test(base64) || base64.length % 4 !== 0) {
    return { problem: `the body of the "${label}" block is not valid base64` };
  }
  return { der: Buffer.from(base64, 'base64') };
}

/** Canonical PEM of one DER object: 64-column base64 and a trailing newline. */
export function toPem(der: ArrayBuffer | Uint8Array, label: string): string {
  const base64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

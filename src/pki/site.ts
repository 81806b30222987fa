/**
 * Site identities: what a process of the platform is (a region, a control node, a checker, a DNS
 * follower, analytics), carried in its site certificate as one URI subject alternative name,
 * `urn:iotdr:site:<kind>:<name>`. Peers learn who called them from that name, after the TLS
 * handshake proved the caller holds the key of a certificate the platform's CA signed.
 *
 * Only `issueSiteCertificate` writes such a name: a device certificate never carries one (a CSR's
 * extensions are ignored, and the CA writes no URI into a device or server certificate), so a device
 * cannot pass for a site with a certificate from the same CA.
 */
import { x509 } from './x509.js';

export const SITE_KINDS = ['region', 'control', 'checker', 'dns', 'analytics', 'etcd', 'nats'] as const;
export type SiteKind = (typeof SITE_KINDS)[number];

/** Who a site is: its kind and its name (a region's name, a checker's id, a follower's name). */
export interface SiteId {
  readonly kind: SiteKind;
  readonly name: string;
}

/** The URI scheme and prefix of a site name. */
export const SITE_URI_PREFIX = 'urn:iotdr:site:';
/** A site's name: what a region name, checker id or follower name may be. */
export const SITE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const SITE_URI = /^urn:iotdr:site:([a-z]+):([A-Za-z0-9][A-Za-z0-9_.-]{0,62})$/;

export function isSiteKind(value: string): value is SiteKind {
  return (SITE_KINDS as readonly string[]).includes(value);
}

/** `urn:iotdr:site:<kind>:<name>`. */
export function siteUri(site: SiteId): string {
  return `${SITE_URI_PREFIX}${site.kind}:${site.name}`;
}

/** How a site is written in messages and logs: `region us-east`, `checker site-b`. */
export function describeSite(site: SiteId): string {
  return `${site.kind} ${site.name}`;
}

export function parseSiteUri(uri: string): SiteId | undefined {
  const match = SITE_URI.exec(uri);
  const kind = match?.[1];
  const name = match?.[2];
  if (kind === undefined || name === undefined || !isSiteKind(kind)) return undefined;
  return { kind, name };
}

/**
 * The site a certificate (DER) names, or undefined when it names none or more than one (a
 * certificate is one site). The caller has already checked that the platform's CA signed it.
 */
export function siteOfCertificate(der: Uint8Array): SiteId | undefined {
  let names: readonly x509.GeneralName[];
  try {
    const cert = new x509.X509Certificate(Uint8Array.from(der).buffer);
    names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  } catch {
    return undefined;
  }
  const sites = names
    .filter((n) => n.type === 'url' && n.value.startsWith(SITE_URI_PREFIX))
    .map((n) => parseSiteUri(n.value));
  const [site] = sites;
  return sites.length === 1 && site !== undefined ? site : undefined;
}

/**
 * A process's site credentials (docs/security.md): its site certificate and key from the state
 * directory, issued there by the platform's CA on first start and renewed at a start within
 * `links.renewBeforeDays` of its end. A host without the CA's key (a region on a host of its own)
 * is given its files by the operator, and is told which when they are missing or stale.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Agent } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ConfigError, exists, readIfExists, writeFileAtomic } from '../common/index.js';
import {
  caCertPath,
  type IotdrConfig,
  natsServersOf,
  type RegionConfig,
  siteCertificatePaths,
} from '../config/index.js';
import type { NatsLink } from '../events/index.js';
import { type SiteTls, siteAgent } from '../http/index.js';
import { CA_KEY_FILE, describeSite, loadOrCreateCa, type SiteId, siteOfCertificate } from '../pki/index.js';

/** The site name of `iotdr analytics` (one per fleet). */
export const ANALYTICS_SITE = 'analytics';

const DAY_MS = 86_400_000;

/** The names a site's API answers on: addresses become IP SANs, host names DNS SANs. */
export interface SiteNames {
  addresses: readonly string[];
}

/** A site's side of the links: its credentials, and agents to call its peers with. */
export interface SiteLinks {
  /** The site's certificate, key and the CA; undefined on plain loopback links. */
  readonly tls: SiteTls | undefined;
  /** The agent to call `peer` with (checks the peer's site), or undefined on plain links. */
  agentFor(peer?: SiteId): Agent | undefined;
  /** Destroys every agent made, closing kept-alive connections. */
  close(): void;
}

/** The links of a site: mutual TLS with its site certificate, or none on the loopback switch. */
export async function siteLinks(
  config: IotdrConfig,
  stateDir: string,
  site: SiteId,
  names: SiteNames,
  now: () => number = Date.now,
): Promise<SiteLinks> {
  if (config.links.mode !== 'mutual-tls')
    return { tls: undefined, agentFor: () => undefined, close: () => {} };
  const tls = await siteCredentials(config, stateDir, site, names, now);
  const agents = new Map<string, Agent>();
  return {
    tls,
    agentFor(peer) {
      const key = peer === undefined ? '' : describeSite(peer);
      let agent = agents.get(key);
      if (agent === undefined) {
        agent = siteAgent(tls, peer);
        agents.set(key, agent);
      }
      return agent;
    },
    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}

/** The site's certificate: the one on disk when still good for it, else a new one from the CA. */
export async function siteCredentials(
  config: IotdrConfig,
  stateDir: string,
  site: SiteId,
  names: SiteNames,
  now: () => number = Date.now,
): Promise<SiteTls> {
  const paths = siteCertificatePaths(stateDir, site);
  const caPath = caCertPath(stateDir);
  const caPem = await readIfExists(caPath);
  const renewBeforeMs = config.links.renewBeforeDays * DAY_MS;
  const addresses = [...new Set(names.addresses)];
  if (caPem !== undefined) {
    const certPem = await readIfExists(paths.cert);
    const keyPem = await readIfExists(paths.key);
    if (
      certPem !== undefined &&
      keyPem !== undefined &&
      stillGood(certPem, keyPem, caPem, site, addresses, now() + renewBeforeMs)
    ) {
      return { caPem, certPem, keyPem, site };
    }
  }
  const pki = join(stateDir, 'pki');
  if (caPem !== undefined && !(await exists(join(pki, CA_KEY_FILE)))) {
    const message =
      `no usable certificate for ${describeSite(site)} at ${paths.cert} (and its key at ${paths.key}), ` +
      `and no CA key here to issue one: issue it where the CA's key is (it names urn:iotdr:site:${site.kind}:${site.name} ` +
      `and ${addresses.join(', ')}; docs/security.md) and copy both files here`;
    throw new ConfigError(message, [
      { path: paths.cert, message: 'a site certificate from the CA in pki/ca.pem' },
    ]);
  }
  const ca = await loadOrCreateCa(pki);
  const issued = await ca.issueSiteCertificate({
    site,
    ipAddresses: addresses.filter((a) => isIP(a) !== 0),
    dnsNames: addresses.filter((a) => isIP(a) === 0).map((a) => a.toLowerCase()),
    validityDays: config.links.certificateDays,
  });
  // The key first: a certificate on disk always has its key beside it.
  await writeFileAtomic(paths.key, issued.privateKeyPem, { mode: 0o600 });
  await writeFileAtomic(paths.cert, issued.certificatePem, { mode: 0o644 });
  return { caPem: ca.certificatePem, certPem: issued.certificatePem, keyPem: issued.privateKeyPem, site };
}

/** Signed by the CA, for this site and every address, with its key, and valid past `until`. */
function stillGood(
  certPem: string,
  keyPem: string,
  caPem: string,
  site: SiteId,
  addresses: readonly string[],
  until: number,
): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return false;
    if (Date.parse(cert.validTo) <= until) return false;
    const named = siteOfCertificate(cert.raw);
    if (named?.kind !== site.kind || named.name !== site.name) return false;
    return addresses.every((a) =>
      isIP(a) !== 0 ? cert.checkIP(a) !== undefined : cert.checkHost(a) !== undefined,
    );
  } catch {
    return false;
  }
}

/**
 * How a process reaches a region's NATS: every server of it, and over mutual-TLS links the
 * process's site certificate (which the servers map to what the site may do there). `who` names
 * the connection on the servers, e.g. `region us-east`.
 */
export function natsLinkOf(
  config: IotdrConfig,
  region: RegionConfig,
  tls: SiteTls | undefined,
  who: string,
): NatsLink {
  return {
    servers: natsServersOf(config, region),
    name: `iotdr ${who}`,
    ...(tls === undefined ? {} : { tls: { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem } }),
  };
}

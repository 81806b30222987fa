/**
 * Mutual TLS between the platform's processes. Every API of a site (a region, control, a checker's
 * host, a name server, analytics) is served over HTTPS with its site certificate and asks each caller
 * for a certificate; a caller that presents a site certificate signed by the platform's CA is that
 * site (its URI names it, see pki/site.ts). People and consoles present none and keep their bearer
 * tokens, over the same HTTPS.
 */

import { Agent } from 'node:https';
import {
  type PeerCertificate,
  type TLSSocket,
  checkServerIdentity as tlsCheckServerIdentity,
} from 'node:tls';
import { describeSite, type SiteId, type SiteKind, siteOfCertificate } from '../pki/index.js';

/** A site's credentials on the links between processes. */
export interface SiteTls {
  /** The CA (PEM) that signs site certificates; peers, in both directions, are verified against it. */
  readonly caPem: string;
  /** This process's site certificate (PEM). */
  readonly certPem: string;
  /** Its private key (PKCS#8 PEM). */
  readonly keyPem: string;
  /** The site the certificate names. */
  readonly site: SiteId;
}

/** Options of an HTTPS server that asks callers for a site certificate without requiring one. */
export function siteServerOptions(tls: SiteTls) {
  return {
    cert: tls.certPem,
    key: tls.keyPem,
    ca: tls.caPem,
    // People and consoles present no certificate; a site does. Who is which is decided per request.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2' as const,
  };
}

const sites = new WeakMap<TLSSocket, SiteId | null>();

/**
 * The site on the other end of a server-side socket: its certificate chained to the site CA
 * (`authorized`) and names exactly one site. Worked out once per connection.
 */
export function siteOfSocket(socket: unknown): SiteId | undefined {
  const tls = socket as Partial<TLSSocket> | null;
  if (tls === null || typeof tls !== 'object' || tls.encrypted !== true) return undefined;
  const key = tls as TLSSocket;
  const known = sites.get(key);
  if (known !== undefined) return known ?? undefined;
  let site: SiteId | undefined;
  if (key.authorized) {
    const peer = key.getPeerCertificate();
    if (peer?.raw !== undefined) site = siteOfCertificate(peer.raw);
  }
  sites.set(key, site ?? null);
  return site;
}

/**
 * The agent a site calls a peer with: its certificate for the peer to know it, the site CA to know
 * the peer, and, when `peer` is given, the peer's certificate must name that site (so a region
 * cannot answer for another, nor a device certificate for anyone). Connections are kept alive.
 */
export function siteAgent(tls: SiteTls, peer?: SiteId): Agent {
  return checkingAgent(tls.caPem, peer, { cert: tls.certPem, key: tls.keyPem });
}

/**
 * An agent that checks the peer is `peer` (a certificate of the CA naming that site) but shows no
 * certificate of its own: for relaying a person's request, which the peer must judge by the
 * person's token, not by the relaying site's certificate.
 */
export function relayAgent(caPem: string, peer: SiteId): Agent {
  return checkingAgent(caPem, peer);
}

function checkingAgent(caPem: string, peer: SiteId | undefined, own?: { cert: string; key: string }): Agent {
  return new Agent({
    keepAlive: true,
    ca: caPem,
    ...(own ?? {}),
    minVersion: 'TLSv1.2',
    checkServerIdentity: (host: string, cert: PeerCertificate) => {
      const mismatch = tlsCheckServerIdentity(host, cert);
      if (mismatch !== undefined || peer === undefined) return mismatch;
      const site = cert.raw === undefined ? undefined : siteOfCertificate(cert.raw);
      if (site?.kind === peer.kind && site.name === peer.name) return undefined;
      const named = site === undefined ? 'no site' : describeSite(site);
      return Object.assign(new Error(`expected the certificate of ${describeSite(peer)}, got ${named}`), {
        code: 'ERR_IOTDR_SITE_MISMATCH',
      });
    },
  });
}

/**
 * The server check of a client that may be answered by any site of one kind, which it may learn of
 * from the peers themselves (a region's NATS, whose servers tell clients of each other): the
 * handshake checks the certificate comes from the platform's CA, and this checks it names a site
 * of that kind. The host name is not compared (the client library dials addresses the cluster
 * announced, with no name to compare); the site name is what identifies a server of the platform.
 */
export function siteKindCheck(kind: SiteKind): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const site = cert.raw === undefined ? undefined : siteOfCertificate(cert.raw);
    if (site?.kind === kind) return undefined;
    const named = site === undefined ? 'no site' : describeSite(site);
    return Object.assign(new Error(`expected the certificate of a ${kind} site, got ${named}`), {
      code: 'ERR_IOTDR_SITE_MISMATCH',
    });
  };
}

/**
 * The agent a person's tool (the CLI, the drill, the fleet simulator) calls an API with: the CA
 * to verify the server, no client certificate (it authenticates with a bearer token).
 */
export function trustingAgent(caPem: string): Agent {
  return new Agent({ keepAlive: true, ca: caPem, minVersion: 'TLSv1.2' });
}

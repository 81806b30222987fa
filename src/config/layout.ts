/**
 * Where the platform keeps its files and where its processes answer: the state directory's layout
 * (secrets, PKI, name-server state) and the API URLs, derived from the configuration. One place for
 * every process, the CLI, the drill and the fleet simulator.
 */
import { isAbsolute, join } from 'node:path';
import { baseUrl } from '../common/index.js';
import type { SiteId } from '../pki/index.js';
import type { RegionConfig } from './region-schema.js';
import type { IotdrConfig } from './schema.js';
import { SECRETS_DIR } from './secrets.js';

/** The admin token: role admin in every region, made on first start. */
export function adminTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'admin.token');
}

/** The token `iotdr analytics` reads every region's bus and the decision log with; role reader. */
export function analyticsTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'analytics.token');
}

/** The token remote checkers (`iotdr checker`) present to the control API; role operator. */
export function checkerTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'checker.token');
}

/** The token `iotdr dns` servers present to the control API to follow decisions; role reader. */
export function dnsTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'dns.token');
}

/** The replicator token file: configured, or `<state>/secrets/replicator.token`. */
export function replicatorTokenPath(config: IotdrConfig, stateDir: string): string {
  const file = config.replication.tokenFile;
  if (file === undefined) return join(stateDir, SECRETS_DIR, 'replicator.token');
  return isAbsolute(file) ? file : join(stateDir, file);
}

/**
 * The secret every broker derives its TLS session ticket keys from (docs/broker.md). Regions on
 * other hosts get a copy, as they get the CA.
 */
export function tlsTicketSecretPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'tls-tickets.key');
}

/** The fleet's CA certificate (its key stays beside it, in the state directory's PKI folder). */
export function caCertPath(stateDir: string): string {
  return join(stateDir, 'pki', 'ca.pem');
}

/** Where a name server keeps the last decision it served. */
export function nameServerStatePath(stateDir: string, name: string): string {
  return join(stateDir, 'dns', `${name}.decision.json`);
}

/** Where a site keeps its certificate (PEM, 0644) and key (0600): `<state>/pki/sites/<kind>-<name>.pem`. */
export function siteCertificatePaths(stateDir: string, site: SiteId): { cert: string; key: string } {
  const base = join(stateDir, 'pki', 'sites', `${site.kind}-${site.name}`);
  return { cert: `${base}.pem`, key: `${base}.key` };
}

/** `https` when the processes' links are mutual TLS (the default), `http` on the loopback switch. */
export function linkScheme(config: IotdrConfig): 'http' | 'https' {
  return config.links.mode === 'mutual-tls' ? 'https' : 'http';
}

/** A region's API base URL from its configuration. */
export function apiUrlOf(config: IotdrConfig, region: RegionConfig): string {
  return baseUrl(region.address, region.api.port, linkScheme(config));
}

/** The control API's URL from the configuration. */
export function controlUrlOf(config: IotdrConfig): string {
  return baseUrl(config.control.address, config.control.port, linkScheme(config));
}

/** The analytics API's URL from the configuration. */
export function analyticsUrlOf(config: IotdrConfig): string {
  return baseUrl(config.analytics.address, config.analytics.port, linkScheme(config));
}

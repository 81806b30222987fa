/**
 * The region's event bus as the configuration says (docs/events.md): a SQLite file in the region's
 * state directory, or the region's stream in its own NATS, reached with the region's site
 * certificate.
 */
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Registry } from 'prom-client';
import { ConfigError, type Logger } from '../common/index.js';
import type { IotdrConfig, RegionConfig } from '../config/index.js';
import {
  connectNats,
  type EventBus,
  eventStreamName,
  JetStreamEventBus,
  natsReplicasOf,
  SqliteEventBus,
} from '../events/index.js';
import type { SiteTls } from '../http/index.js';
import { loadOrCreateCa } from '../pki/index.js';
import { ANALYTICS_SITE, natsLinkOf } from './sites.js';

/**
 * How long a region waits at start for its NATS to take the stream, in ms: a server starting
 * beside it, or a cluster still electing its JetStream leader.
 */
export const NATS_START_WAIT_MS = 30_000;
const NATS_RETRY_MS = 500;

export interface RegionBusOptions {
  config: IotdrConfig;
  region: RegionConfig;
  stateDir: string;
  /** The region's site credentials; undefined on plain-loopback links. */
  tls: SiteTls | undefined;
  metrics?: Registry;
  logger: Logger;
  /** Default NATS_START_WAIT_MS. */
  waitMs?: number;
}

/**
 * Opens the region's bus. With JetStream it retries while the region's NATS does not answer, up
 * to `waitMs`.
 * @throws StoreError IOTDR_EVENTS_UNAVAILABLE when NATS did not answer in time,
 * IOTDR_EVENTS_STREAM_REFUSED when it refused the stream.
 */
export async function openRegionBus(options: RegionBusOptions): Promise<EventBus> {
  const { config, region, stateDir, metrics, logger } = options;
  const e = config.events;
  const retention = { maxAgeSeconds: e.retentionSeconds, maxBytes: e.maxBytes };
  if (e.engine === 'sqlite')
    return SqliteEventBus.open({
      path: join(stateDir, 'regions', region.name, 'events.db'),
      region: region.name,
      synchronous: e.synchronous,
      retention,
      ...(metrics === undefined ? {} : { metrics }),
    });
  if (region.nats === undefined)
    throw new ConfigError(`events.engine is jetstream but region ${region.name} has no nats`, [
      { path: `regions.${region.name}.nats`, message: 'the region needs its own NATS' },
    ]);
  const busOptions = {
    region: region.name,
    nats: natsLinkOf(config, region, options.tls, `region ${region.name}`),
    replicas: natsReplicasOf(region.nats),
    duplicateWindowSeconds: e.duplicateWindowSeconds,
    retention,
    ...(metrics === undefined ? {} : { metrics }),
  };
  const deadline = Date.now() + (options.waitMs ?? NATS_START_WAIT_MS);
  for (let attempt = 1; ; attempt++) {
    try {
      return await JetStreamEventBus.open(busOptions);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== 'IOTDR_EVENTS_UNAVAILABLE' || Date.now() >= deadline) throw error;
      if (attempt === 1)
        logger.warn(
          { servers: busOptions.nats.servers, err: (error as Error).message },
          "waiting for the region's NATS to take the event stream",
        );
      await new Promise((resolve) => setTimeout(resolve, NATS_RETRY_MS));
    }
  }
}

/**
 * The server of a region's NATS leading its event stream (its name in `regions[].nats.servers`),
 * asked with a certificate of analytics' site (which may read the stream, not write it), made from
 * the CA in this state directory and kept in memory only; undefined for a stream of one replica.
 * For the drill, which kills that server with its fault.
 */
export async function natsStreamLeader(
  config: IotdrConfig,
  stateDir: string,
  regionName: string,
): Promise<string | undefined> {
  const region = config.regions.find((r) => r.name === regionName);
  if (region?.nats === undefined) return undefined;
  let tls: SiteTls | undefined;
  if (config.links.mode === 'mutual-tls') {
    const ca = await loadOrCreateCa(join(stateDir, 'pki'));
    const site = { kind: 'analytics', name: ANALYTICS_SITE } as const;
    const issued = await ca.issueSiteCertificate({ site, ipAddresses: [], dnsNames: [] });
    tls = { caPem: ca.certificatePem, certPem: issued.certificatePem, keyPem: issued.privateKeyPem, site };
  }
  const nc = await connectNats(natsLinkOf(config, region, tls, 'drill'));
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(eventStreamName(region.name));
    return info.cluster?.leader;
  } finally {
    await nc.close();
  }
}

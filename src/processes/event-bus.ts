/**
 * The region's event bus as the configuration says (docs/events.md): a SQLite file in the region's
 * state directory, or the region's stream in its own NATS, reached with the region's site
 * certificate.
 */
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { abortableSleep, ConfigError, type Logger } from '../common/index.js';
import type { IotdrConfig, RegionConfig } from '../config/index.js';
import { type EventBus, JetStreamEventBus, natsReplicasOf, SqliteEventBus } from '../events/index.js';
import type { SiteTls } from '../http/index.js';
import { natsLinkOf } from './sites.js';

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
      await abortableSleep(NATS_RETRY_MS, new AbortController().signal);
    }
  }
}

/**
 * The `regions` list: each region's name, priority and address, its listeners, and the sections
 * its components own (`store`: the registry's; `redis`: the broker's).
 */
import { z } from 'zod';
import { type RedisConfig, redisSection } from '../broker/index.js';
import {
  addressSchema,
  DEFAULT_MQTT_PORT,
  DEFAULT_MQTT_TOKEN_PORT,
  expecting,
  integerAtLeast,
  matching,
  portSchema,
  REGION_NAME_PATTERN,
  section,
  trueOrFalse,
} from '../common/index.js';
import { type NatsConfig, natsSection } from '../events/index.js';
import { type StoreConfig, storeSchema } from '../registry/index.js';

/** HTTP API port of a region. */
export const DEFAULT_REGION_API_PORT = 8080;
/** Port of each region's command-and-control listener (`api.<zone>`). */
export const DEFAULT_REGION_CNC_PORT = 8090;
/** The lowest priority number; the lowest configured is the primary. */
export const REGION_PRIORITY_MIN = 1;

/**
 * The regions when the file names none; ports and store take their defaults. A lower priority
 * number is preferred, so `us-east` is the primary.
 */
export const DEFAULT_REGIONS: ReadonlyArray<Readonly<{ name: string; priority: number; address: string }>> =
  Object.freeze([
    Object.freeze({ name: 'us-east', priority: 1, address: '127.0.0.11' }),
    Object.freeze({ name: 'us-west', priority: 2, address: '127.0.0.12' }),
  ]);

export interface RegionConfig {
  /** `^[a-z][a-z0-9-]{0,62}$`, unique. */
  readonly name: string;
  /** Integer ≥ 1, unique; the lowest number is the preferred region (the primary). */
  readonly priority: number;
  /** IPv4/IPv6 literal or hostname: where the region listens and what DNS answers when it is active. */
  readonly address: string;
  readonly api: { readonly port: number };
  /**
   * The command-and-control API consoles reach as `api.<zone>`: its own listener on the region's
   * address, so it can fail (and be checked) on its own. `tls: true` serves HTTPS with a
   * certificate from the embedded CA naming `api.<zone>`. Defaults: port 8090, tls false.
   */
  readonly cnc: { readonly port: number; readonly tls: boolean };
  readonly mqtt: {
    readonly port: number;
    /** Port of the token listener; used only when `broker.tokenAuth` is on. Default 8884. */
    readonly tokenPort: number;
  };
  readonly store: StoreConfig;
  /**
   * The region's own Redis, shared by every broker node of the region (workers, hosts): messages,
   * retained messages and persistent sessions cross nodes through it (docs/broker.md, "Workers
   * and hosts"). Absent: one broker process, in memory. Never shared with another region.
   */
  readonly redis?: RedisConfig;
  /**
   * The region's own NATS, holding its event bus when `events.engine` is jetstream
   * (docs/events.md). Never shared with another region.
   */
  readonly nats?: NatsConfig;
}

export const regionSchema = section({
  name: matching(
    REGION_NAME_PATTERN,
    'a region name: a lowercase letter, then up to 62 lowercase letters, digits or hyphens',
  ),
  priority: integerAtLeast(REGION_PRIORITY_MIN),
  address: addressSchema,
  api: section({ port: portSchema.default(DEFAULT_REGION_API_PORT) }).prefault({}),
  cnc: section({
    port: portSchema.default(DEFAULT_REGION_CNC_PORT),
    tls: trueOrFalse().default(false),
  }).prefault({}),
  mqtt: section({
    port: portSchema.default(DEFAULT_MQTT_PORT),
    tokenPort: portSchema.default(DEFAULT_MQTT_TOKEN_PORT),
  }).prefault({}),
  store: storeSchema,
  redis: redisSection.optional(),
  nats: natsSection.optional(),
});

export const regionsSchema = z
  .array(regionSchema, { error: expecting('expected a list of regions') })
  .min(1, { error: 'expected at least one region' })
  .prefault(() => DEFAULT_REGIONS.map((region) => ({ ...region })));

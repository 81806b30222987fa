/**
 * The root's own fields: the fleet's names (zone, and the labels of the broker and
 * command-and-control names under it), the control API's listener, logging and the APIs' body
 * limit. Each component's own section lives with the component (docs/architecture.md).
 */
import {
  DEFAULT_API_NAME,
  DEFAULT_LOG_LEVEL,
  DEFAULT_MQTT_NAME,
  DNS_NAME_PATTERN,
  dnsLabelSchema,
  integerWithin,
  LOG_LEVELS,
  listener,
  matching,
  oneOf,
  type Range,
  section,
} from '../common/index.js';
import { DEFAULT_BODY_LIMIT } from '../http/index.js';

/** DNS zone of the fleet. */
export const DEFAULT_ZONE = 'iot.test';
/** HTTP API of `iotdr control`. */
export const DEFAULT_CONTROL_ADDRESS = '127.0.0.10';
export const DEFAULT_CONTROL_PORT = 8080;

/** Bounds of the root's numbers, inclusive. */
export const FLEET_LIMITS = {
  /** Bytes: 1 KiB to 64 MiB. */
  'api.bodyLimit': { min: 1024, max: 64 * 1024 * 1024 },
} as const satisfies Record<string, Range>;

export const zoneSchema = matching(
  DNS_NAME_PATTERN,
  'a lowercase DNS name such as iot.test (dot-separated labels of a-z, 0-9 and inner hyphens, no trailing dot)',
).default(DEFAULT_ZONE);

export const namesSection = section({
  mqtt: dnsLabelSchema.default(DEFAULT_MQTT_NAME),
  api: dnsLabelSchema.default(DEFAULT_API_NAME),
}).prefault({});

export const controlSection = section(listener(DEFAULT_CONTROL_ADDRESS, DEFAULT_CONTROL_PORT)).prefault({});

export const loggingSection = section({ level: oneOf(LOG_LEVELS).default(DEFAULT_LOG_LEVEL) }).prefault({});

/** Largest HTTP request body the APIs accept, in bytes: the HTTP toolkit's own default (1 MiB). */
export const apiSection = section({
  bodyLimit: integerWithin(FLEET_LIMITS['api.bodyLimit'], 'bytes').default(DEFAULT_BODY_LIMIT),
}).prefault({});

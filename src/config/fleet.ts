/**
 * The root's own fields: the fleet's names (zone, and the labels of the broker and
 * command-and-control names under it), logging, the links between sites and the APIs' body
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
  matching,
  oneOf,
  type Range,
  section,
} from '../common/index.js';
import { DEFAULT_BODY_LIMIT } from '../http/index.js';

/** DNS zone of the fleet. */
export const DEFAULT_ZONE = 'iot.test';

/** Bounds of the root's numbers, inclusive. */
export const FLEET_LIMITS = {
  /** Bytes: 1 KiB to 64 MiB. */
  'api.bodyLimit': { min: 1024, max: 64 * 1024 * 1024 },
  /** Days: a site certificate lives at most as long as a server certificate may (CA/Browser Forum). */
  'links.certificateDays': { min: 2, max: 397 },
  /** Days before its end that a site certificate is renewed at a process's start. */
  'links.renewBeforeDays': { min: 1, max: 365 },
} as const satisfies Record<string, Range>;

/** How the platform's processes talk to one another (docs/security.md). */
export const LINK_MODES = ['mutual-tls', 'plain-loopback'] as const;
export type LinkMode = (typeof LINK_MODES)[number];
/** Mutual TLS with site certificates; plain HTTP is a development switch, for loopback addresses only. */
export const DEFAULT_LINK_MODE: LinkMode = 'mutual-tls';
export const DEFAULT_SITE_CERTIFICATE_DAYS = 90;
export const DEFAULT_SITE_RENEW_BEFORE_DAYS = 30;

export const zoneSchema = matching(
  DNS_NAME_PATTERN,
  'a lowercase DNS name such as iot.test (dot-separated labels of a-z, 0-9 and inner hyphens, no trailing dot)',
).default(DEFAULT_ZONE);

export const namesSection = section({
  mqtt: dnsLabelSchema.default(DEFAULT_MQTT_NAME),
  api: dnsLabelSchema.default(DEFAULT_API_NAME),
}).prefault({});

export const loggingSection = section({ level: oneOf(LOG_LEVELS).default(DEFAULT_LOG_LEVEL) }).prefault({});

export const linksSection = section({
  mode: oneOf(LINK_MODES).default(DEFAULT_LINK_MODE),
  certificateDays: integerWithin(FLEET_LIMITS['links.certificateDays'], 'days').default(
    DEFAULT_SITE_CERTIFICATE_DAYS,
  ),
  renewBeforeDays: integerWithin(FLEET_LIMITS['links.renewBeforeDays'], 'days').default(
    DEFAULT_SITE_RENEW_BEFORE_DAYS,
  ),
}).prefault({});

/** Largest HTTP request body the APIs accept, in bytes: the HTTP toolkit's own default (1 MiB). */
export const apiSection = section({
  bodyLimit: integerWithin(FLEET_LIMITS['api.bodyLimit'], 'bytes').default(DEFAULT_BODY_LIMIT),
}).prefault({});

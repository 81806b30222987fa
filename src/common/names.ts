/**
 * Names and ports every part of the fleet agrees on: the configuration, the servers that answer to
 * them, and the device SDK that reaches them. Each is defined here once, below every component.
 */
import { isIP } from 'node:net';

/**
 * A region's name: a lowercase letter, then up to 62 lowercase letters, digits or hyphens. The
 * same shape names a failover checker and a health checkpoint: each appears in URL paths, metric
 * labels and the decision log beside region names, so one rule fits all three.
 */
export const REGION_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * The platform's own topics (failover notices, commands, shadows, the broker cluster's link): only
 * iotdr writes them, so a device, a rule or a peer cannot speak in the platform's name.
 */
export const PLATFORM_TOPIC_PREFIX = '$iotdr/';

const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** One lowercase DNS label: letters a-z, digits and inner hyphens, 1 to 63 characters (RFC 1035 §2.3.1). */
export const DNS_LABEL_PATTERN = new RegExp(`^${DNS_LABEL}$`);
/** A lowercase DNS name of dot-separated labels, at most 253 characters, no trailing dot. */
export const DNS_NAME_PATTERN = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** True for an IP literal, or a hostname whose last label is not all digits (that would be a mistyped IPv4). */
export function isAddress(value: string): boolean {
  if (isIP(value) !== 0) return true;
  return HOSTNAME_PATTERN.test(value) && !/(?:^|\.)\d+$/.test(value);
}

/** Label of the devices' name under the zone: `mqtt.<zone>`. */
export const DEFAULT_MQTT_NAME = 'mqtt';
/** Label of the command-and-control name under the zone: `api.<zone>`. */
export const DEFAULT_API_NAME = 'api';
/** MQTT over TLS with a client certificate: a region's mutual-TLS listener (IANA "secure-mqtt"). */
export const DEFAULT_MQTT_PORT = 8883;
/** MQTT over TLS with username = thing name, password = device token: a region's token listener. */
export const DEFAULT_MQTT_TOKEN_PORT = 8884;

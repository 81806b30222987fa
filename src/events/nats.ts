/**
 * A region's NATS as the event bus sees it: how a process connects (mutual TLS with its site
 * certificate, reconnecting for as long as it runs), the stream that holds the region's events and
 * the subject they are published on, and how one event is laid out in a message.
 *
 * One message is one event: a first line of JSON with everything but the payload, a newline, then
 * the payload's bytes as the device sent them (JSON text or binary). JSON.stringify never writes
 * a raw newline, so the first newline ends the header line. The event's id is also the message's
 * `Nats-Msg-Id`, which JetStream de-duplicates on.
 */
import {
  type ConnectionOptions,
  connect,
  type NatsConnection,
  type TlsOptions,
} from '@nats-io/transport-node';
import { StoreError } from '../common/index.js';
import { siteKindCheck } from '../http/index.js';
import { parseJson } from './payload.js';
import type { BusEvent, EventPayload, EventSource, NewEvent } from './types.js';

export interface NatsLink {
  /** Server URLs, `nats://host:port` or `tls://host:port`; the client moves between them. */
  servers: readonly string[];
  /**
   * Mutual TLS (PEM): the CA that signed the servers' certificates, and this process's site
   * certificate and key, which the servers verify. A server must show a certificate of that CA
   * naming a NATS site (`urn:iotdr:site:nats:<name>`). Without it the link is plain (loopback only).
   */
  tls?: { ca: string; cert: string; key: string };
  /** The connection's name as the servers show it, e.g. `iotdr:region:us-east`. */
  name: string;
  /** How long connecting to one server may take, in ms. Default 2000. */
  timeoutMs?: number;
}

/** Time between reconnect attempts to one server, in ms. */
const RECONNECT_WAIT_MS = 250;
/** Server pings every this many ms; two missed ones end the connection (then it reconnects). */
const PING_INTERVAL_MS = 2000;

/** The stream of a region's events: `iotdr-events-<region>`. */
export function eventStreamName(region: string): string {
  return `iotdr-events-${region}`;
}

/** The subject a region's events are published on: `iotdr.events.<region>`. */
export function eventSubject(region: string): string {
  return `iotdr.events.${region}`;
}

/** The region's NATS could not be reached or did not answer in time. */
export function natsUnavailable(what: string, cause?: unknown): StoreError {
  const reason = cause instanceof Error ? `: ${cause.message}` : '';
  return new StoreError('IOTDR_EVENTS_UNAVAILABLE', `${what}${reason}`, {
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The client's TLS options; Node's own options pass through to the socket, so the check goes too. */
function natsTls(tls: NonNullable<NatsLink['tls']>): TlsOptions {
  const options = { ...tls, checkServerIdentity: siteKindCheck('nats') };
  return options;
}

/**
 * Connects to the region's NATS; once connected the client reconnects by itself for as long as
 * the connection is not closed, so a server restart or a node lost in a cluster is a pause.
 * @throws StoreError IOTDR_EVENTS_UNAVAILABLE when no server answers the first time.
 */
export async function connectNats(link: NatsLink): Promise<NatsConnection> {
  const options: ConnectionOptions = {
    servers: [...link.servers],
    name: link.name,
    timeout: link.timeoutMs ?? 2000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    reconnectJitter: 100,
    pingInterval: PING_INTERVAL_MS,
    maxPingOut: 2,
    ...(link.tls === undefined ? {} : { tls: natsTls(link.tls) }),
  };
  try {
    return await connect(options);
  } catch (error) {
    throw natsUnavailable(`NATS at ${link.servers.join(', ')} did not answer`, error);
  }
}

interface EventHeader {
  id: string;
  time: number;
  source: EventSource;
  topic: string;
  thingName?: string;
  clientId?: string;
  /** How the payload bytes are read back: JSON or base64. */
  ptype: EventPayload['type'];
}

const NEWLINE = 0x0a;

/** One event as a message's data. */
export function encodeEvent(event: NewEvent): Uint8Array {
  const { payload } = event;
  const header: EventHeader = {
    id: event.id,
    time: event.time,
    source: event.source,
    topic: event.topic,
    ...(event.thingName === undefined ? {} : { thingName: event.thingName }),
    ...(event.clientId === undefined ? {} : { clientId: event.clientId }),
    ptype: payload.type,
  };
  const body =
    payload.type === 'json'
      ? Buffer.from(JSON.stringify(payload.value) ?? 'null', 'utf8')
      : Buffer.from(payload.data, 'base64');
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`, 'utf8'), body]);
}

/**
 * The event a message holds, at its stream sequence. Returns undefined for data that is not an
 * event (written to the subject by something else than a bus), which readers skip.
 */
export function decodeEvent(data: Uint8Array, offset: number, region: string): BusEvent | undefined {
  const end = data.indexOf(NEWLINE);
  if (end < 0) return undefined;
  let header: EventHeader;
  try {
    header = JSON.parse(Buffer.from(data.subarray(0, end)).toString('utf8')) as EventHeader;
  } catch {
    return undefined;
  }
  if (typeof header?.id !== 'string' || typeof header.topic !== 'string') return undefined;
  const body = data.subarray(end + 1);
  let payload: EventPayload;
  if (header.ptype === 'json') {
    const parsed = parseJson(body);
    if (!parsed.ok) return undefined;
    payload = { type: 'json', value: parsed.value };
  } else payload = { type: 'base64', data: Buffer.from(body).toString('base64') };
  return {
    id: header.id,
    offset,
    region,
    time: header.time,
    source: header.source,
    topic: header.topic,
    ...(header.thingName === undefined ? {} : { thingName: header.thingName }),
    ...(header.clientId === undefined ? {} : { clientId: header.clientId }),
    payload,
  };
}

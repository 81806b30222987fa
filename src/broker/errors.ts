import {
  ConflictError,
  type ErrorCatalogue,
  type FieldIssue,
  IotdrError,
  NotFoundError,
  ValidationError,
} from '../common/index.js';
import type { FailoverNotice } from './broker.js';

/** Every code the broker raises. */
export const BROKER_ERRORS = {
  IOTDR_BROKER_CLOSED: {
    status: 503,
    meaning: 'a message was handed to a broker that is closed: the region is stopping',
  },
  IOTDR_BROKER_INVALID_OPTIONS: {
    meaning:
      "the broker's options (limits, TLS tickets, cluster Redis URL) are not valid; the broker does not start",
  },
  IOTDR_BROKER_NO_SESSION_ROOM: {
    meaning:
      'the open-file limit, memory or heap leaves no room for a single session; the broker does not start',
  },
  IOTDR_BROKER_REDIS_UNREACHABLE: { meaning: "the region's Redis did not answer; the broker does not start" },
  IOTDR_BROKER_NO_HUB: {
    meaning: "a broker node heard no hub on the region's Redis; the node does not start",
  },
  IOTDR_BROKER_NOTICE_STALE: {
    status: 409,
    meaning:
      'a failover notice of a lower epoch than the one the broker published (or of the same epoch naming another region); the newer one stays retained',
  },
  IOTDR_BROKER_RELAY_TO_SELF: {
    status: 400,
    meaning: 'a relay of the failover notice names the region it was sent to; call its notice route instead',
  },
  IOTDR_BROKER_RELAY_UNKNOWN_REGION: {
    status: 404,
    meaning: 'a relay of the failover notice names a region the configuration does not list',
  },
  IOTDR_SHADOW_INTERNAL: {
    meaning: 'a shadow request over MQTT failed inside the registry (its `…/rejected` answer has code 500)',
  },
} as const satisfies ErrorCatalogue;

type BrokerErrors = typeof BROKER_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends BrokerErrors {}
}

export function brokerClosed(): IotdrError {
  return new IotdrError('IOTDR_BROKER_CLOSED', 'the broker is closed', { status: 503 });
}

/** Options the broker cannot run with; `issues` names each bad field when the options are a set. */
export function invalidBrokerOptions(message: string, issues: FieldIssue[] = []): ValidationError {
  return new ValidationError(message, issues, 'IOTDR_BROKER_INVALID_OPTIONS');
}

/** What to raise is in `message`; `details` carries the facts the limit was computed from. */
export function noSessionRoom(message: string, details: Record<string, unknown>): IotdrError {
  return new IotdrError('IOTDR_BROKER_NO_SESSION_ROOM', message, { details });
}

export function redisUnreachable(url: string, cause: unknown): IotdrError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new IotdrError('IOTDR_BROKER_REDIS_UNREACHABLE', `Redis at ${url} did not answer: ${reason}`, {
    status: 503,
    cause,
  });
}

export function noHub(ms: number): IotdrError {
  return new IotdrError(
    'IOTDR_BROKER_NO_HUB',
    `no hub answered on the cluster link within ${ms} ms: is the region running, on the same Redis?`,
    { status: 503 },
  );
}

/** A notice older than the one the broker holds (`kept`, in the problem's details). */
export function staleNotice(notice: FailoverNotice, kept: FailoverNotice): ConflictError {
  const why =
    notice.epoch < kept.epoch
      ? `epoch ${notice.epoch} is lower than the published epoch ${kept.epoch}`
      : `epoch ${notice.epoch} was published already naming ${kept.activeRegion}, not ${notice.activeRegion}`;
  return new ConflictError('IOTDR_BROKER_NOTICE_STALE', `the failover notice is not published: ${why}`, {
    kept: { ...kept },
  });
}

export function relayToSelf(region: string): ValidationError {
  const message = `region ${region} is this region: a relay goes to another region`;
  return new ValidationError(message, [{ path: 'region', message }], 'IOTDR_BROKER_RELAY_TO_SELF');
}

export function unknownRelayRegion(region: string): NotFoundError {
  return new NotFoundError(
    'IOTDR_BROKER_RELAY_UNKNOWN_REGION',
    `region ${region} is not in the configuration: nothing to relay to`,
    { region },
  );
}

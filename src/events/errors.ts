import { type ErrorCatalogue, IotdrError, StoreError, ValidationError } from '../common/index.js';

/** Every code the event bus raises. */
export const EVENTS_ERRORS = {
  IOTDR_EVENTS_INVALID_EVENT: {
    meaning: 'an event handed to the bus has an id, topic or time it cannot store (a bug of its producer)',
  },
  IOTDR_EVENTS_CLOSED: { status: 503, meaning: 'the event bus is closed: the region is stopping' },
  IOTDR_EVENTS_UNAVAILABLE: {
    status: 503,
    meaning:
      "the region's NATS did not answer, or its stream had no leader in time: the event was not taken (retry)",
  },
  IOTDR_EVENTS_STREAM_REFUSED: {
    meaning:
      "the region's NATS refused the event stream's configuration (JetStream off, too few servers for its replicas, or its subject held by another stream)",
  },
  IOTDR_EVENTS_UPGRADE_REQUIRED: {
    status: 426,
    meaning: 'a plain GET on the WebSocket stream route, which needs `Upgrade: websocket`',
  },
} as const satisfies ErrorCatalogue;

type EventsErrors = typeof EVENTS_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends EventsErrors {}
}

/** An event handed to append() that cannot be stored (id or topic missing or too long). */
export function invalidEvent(message: string, path: string): ValidationError {
  return new ValidationError(message, [{ path, message }], 'IOTDR_EVENTS_INVALID_EVENT');
}

/** The bus was closed (the region is stopping); nothing more is appended or read. */
export function busClosed(): StoreError {
  return new StoreError('IOTDR_EVENTS_CLOSED', 'the event bus is closed');
}

/** The region's NATS refused to make or update the event stream. */
export function streamRefused(stream: string, cause: unknown): StoreError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StoreError('IOTDR_EVENTS_STREAM_REFUSED', `NATS refused the stream ${stream}: ${reason}`, {
    status: 500,
    cause,
  });
}

/** A plain GET on the WebSocket route. */
export function upgradeRequired(): IotdrError {
  return new IotdrError(
    'IOTDR_EVENTS_UPGRADE_REQUIRED',
    'this route streams over WebSocket: send Upgrade: websocket (or long-poll GET /v1/events)',
    { status: 426 },
  );
}

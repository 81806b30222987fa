import { type ErrorCatalogue, IotdrError, StoreError, ValidationError } from '../common/index.js';

/** Every code the event bus raises. */
export const EVENTS_ERRORS = {
  IOTDR_EVENTS_INVALID_EVENT: {
    meaning: 'an event handed to the bus has an id, topic or time it cannot store (a bug of its producer)',
  },
  IOTDR_EVENTS_CLOSED: { status: 503, meaning: 'the event bus is closed: the region is stopping' },
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

/** A plain GET on the WebSocket route. */
export function upgradeRequired(): IotdrError {
  return new IotdrError(
    'IOTDR_EVENTS_UPGRADE_REQUIRED',
    'this route streams over WebSocket: send Upgrade: websocket (or long-poll GET /v1/events)',
    { status: 426 },
  );
}

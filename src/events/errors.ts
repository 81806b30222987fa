import { IotdrError, StoreError, ValidationError } from '../common/index.js';

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

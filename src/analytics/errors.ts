import { type ErrorCatalogue, IotdrError, NotFoundError, StoreError } from '../common/index.js';

/** Every code analytics raises, its dashboard's (src/analytics/dashboard/errors.ts) included. */
export const ANALYTICS_ERRORS = {
  IOTDR_ANALYTICS_UNKNOWN_REGION: {
    status: 404,
    meaning: 'a query or ingest control names a region analytics does not ingest',
  },
  IOTDR_ANALYTICS_UNKNOWN_DEVICE: {
    status: 404,
    meaning: 'no message from this device has reached analytics',
  },
  IOTDR_ANALYTICS_CLOSED: { status: 503, meaning: 'the analytics store is closed: the process is stopping' },
  IOTDR_ANALYTICS_BUS_READ_FAILED: {
    meaning: "a region's event bus answered an ingestor with an error or a body off the contract",
  },
  IOTDR_ANALYTICS_BUS_UNREACHABLE: {
    meaning:
      "a region's event stream could not be read: its NATS is not connected or did not answer, or the stream is missing",
  },
  IOTDR_ANALYTICS_CONTROL_READ_FAILED: { meaning: "the control API's decision log could not be read" },
  IOTDR_DASHBOARD_ASSET_NOT_FOUND: {
    status: 404,
    meaning: "a file that is not one of the dashboard's assets",
  },
  IOTDR_ANALYTICS_HOST_NOT_ALLOWED: {
    status: 421,
    meaning:
      "the request's Host is not a name analytics answers to (DNS rebinding, or a name missing from analytics.allowedHosts)",
  },
  IOTDR_DASHBOARD_TOO_MANY_CLIENTS: { status: 503, meaning: 'the live view already serves its most clients' },
  IOTDR_DASHBOARD_TOO_MANY_STREAMS: {
    status: 429,
    meaning: 'this token already holds its most live-view streams',
  },
  IOTDR_DASHBOARD_CONTROL_UNREACHABLE: {
    status: 502,
    meaning: 'the control API could not be reached for a routing control; nothing was switched',
  },
  IOTDR_DASHBOARD_CONTROL_TIMEOUT: {
    status: 504,
    meaning: 'the control API did not answer a routing control in time; it may still have switched',
  },
} as const satisfies ErrorCatalogue;

type AnalyticsErrors = typeof ANALYTICS_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends AnalyticsErrors {}
}

/** A query or control names a region analytics does not ingest. */
export class UnknownIngestRegionError extends NotFoundError {
  constructor(region: string, known: readonly string[]) {
    super(
      'IOTDR_ANALYTICS_UNKNOWN_REGION',
      `analytics does not ingest region '${region}'; known: ${known.join(', ')}`,
      {
        region,
        known: [...known],
      },
    );
  }
}

/** A device asked for by name that analytics has never received a message from. */
export class UnknownDeviceError extends NotFoundError {
  constructor(thingName: string) {
    super('IOTDR_ANALYTICS_UNKNOWN_DEVICE', `analytics has received nothing from device '${thingName}'`, {
      thingName,
    });
  }
}

/** The analytics store was closed (the process is stopping); nothing more is written or read. */
export function storeClosed(): StoreError {
  return new StoreError('IOTDR_ANALYTICS_CLOSED', 'the analytics store is closed');
}

/** A region's bus answered something analytics cannot read (HTTP error or a body off the contract). */
export class BusReadError extends IotdrError {
  constructor(
    region: string,
    message: string,
    options: { status?: number; code?: string; cause?: unknown } = {},
  ) {
    super('IOTDR_ANALYTICS_BUS_READ_FAILED', `region ${region}: ${message}`, {
      status: 502,
      details: {
        region,
        ...(options.status === undefined ? {} : { httpStatus: options.status }),
        ...(options.code === undefined ? {} : { upstreamCode: options.code }),
      },
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
  }
}

/**
 * A region's event stream could not be read: its NATS is not reachable or did not answer, or the
 * stream does not exist (the region has not made it yet).
 */
export class BusUnreachableError extends IotdrError {
  constructor(region: string, message: string, options: { servers: readonly string[]; cause?: unknown }) {
    super('IOTDR_ANALYTICS_BUS_UNREACHABLE', `region ${region}: ${message}`, {
      status: 502,
      details: { region, servers: [...options.servers] },
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
  }
}

/** The control API's decision log could not be read. */
export class ControlReadError extends IotdrError {
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super('IOTDR_ANALYTICS_CONTROL_READ_FAILED', message, {
      status: 502,
      details: options.status === undefined ? {} : { httpStatus: options.status },
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
  }
}

import { IotdrError, NotFoundError, StoreError } from '../common/index.js';

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

import { type ErrorCatalogue, IotdrError, type IotdrErrorOptions } from '../common/index.js';

/** Every code the device SDK raises; none is an HTTP answer (the SDK speaks MQTT). */
export const DEVICE_ERRORS = {
  IOTDR_DEVICE_QUEUE_FULL: {
    meaning: '`publish` refused: the queue already holds `queue.maxMessages` unacknowledged messages',
  },
  IOTDR_DEVICE_INVALID_PAYLOAD: {
    meaning: '`publish` needs a JSON object (or its UTF-8 text) of at most 131,072 bytes',
  },
  IOTDR_DEVICE_INVALID_TOPIC: {
    meaning:
      'a publish topic that is empty or has `+`, `#` or NUL, or a subscription filter that is not MQTT',
  },
  IOTDR_DEVICE_INVALID_QOS: { meaning: '`publish` with a QoS other than 1' },
  IOTDR_DEVICE_CLOSED: { meaning: 'the client was closed (before the call, or before its answer came)' },
  IOTDR_DEVICE_TIMEOUT: { meaning: 'a shadow request got no answer within `requestTimeoutMs`' },
  IOTDR_DEVICE_SHADOW_REJECTED: { meaning: 'the broker answered a shadow request on `…/rejected`' },
  IOTDR_DEVICE_SUBSCRIBE_REFUSED: { meaning: "the broker's SUBACK refused a filter (no policy allows it)" },
  IOTDR_DEVICE_QUEUE_STORE: { meaning: 'the queue file could not be opened or written' },
  IOTDR_DEVICE_INVALID_OPTIONS: { meaning: "the client's options are not valid; `issues` names each field" },
  IOTDR_DEVICE_INVALID_SHADOW: { meaning: '`updateShadow` without `desired` or `reported`' },
  IOTDR_DEVICE_COMMAND_HANDLER_SET: { meaning: '`onCommand` while a command handler is registered' },
} as const satisfies ErrorCatalogue;

type DeviceErrors = typeof DEVICE_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends DeviceErrors {}
}

/** A failure of the device SDK; `code` is one of DEVICE_ERRORS. */
export class DeviceError extends IotdrError {
  constructor(code: keyof DeviceErrors, message: string, options: IotdrErrorOptions = {}) {
    super(code, message, { status: 400, ...options });
    this.name = 'DeviceError';
  }
}

export class QueueFullError extends DeviceError {
  constructor(maxMessages: number) {
    super(
      'IOTDR_DEVICE_QUEUE_FULL',
      `the device queue holds ${maxMessages} unacknowledged messages (queue.maxMessages); nothing was accepted`,
      { status: 503, details: { maxMessages } },
    );
    this.name = 'QueueFullError';
  }
}

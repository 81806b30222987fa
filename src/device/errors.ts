import { IotdrError, type IotdrErrorOptions } from '../common/index.js';

/**
 * The device SDK's failures, each with a stable code:
 * - `IOTDR_DEVICE_QUEUE_FULL`: `publish` refused; the queue holds `maxMessages` unacknowledged messages.
 * - `IOTDR_DEVICE_INVALID_PAYLOAD`: `publish` needs a JSON object (or its UTF-8 bytes).
 * - `IOTDR_DEVICE_INVALID_TOPIC`: an empty topic, wildcards in a publish topic, a NUL character.
 * - `IOTDR_DEVICE_CLOSED`: the client was closed.
 * - `IOTDR_DEVICE_TIMEOUT`: a shadow request got no answer within `requestTimeoutMs`.
 * - `IOTDR_DEVICE_SHADOW_REJECTED`: the broker answered a shadow request on `…/rejected`.
 * - `IOTDR_DEVICE_SUBSCRIBE_REFUSED`: the broker's SUBACK refused a filter (policy).
 * - `IOTDR_DEVICE_QUEUE_STORE`: the queue file could not be opened or written.
 * - `IOTDR_DEVICE_INVALID_OPTIONS`: the constructor's options (a `ValidationError` naming each field).
 * - `IOTDR_DEVICE_INVALID_QOS`: `publish` with a QoS other than 1.
 * - `IOTDR_DEVICE_INVALID_SHADOW`: `updateShadow` without `desired` or `reported`.
 * - `IOTDR_DEVICE_COMMAND_HANDLER_SET`: `onCommand` while a handler is registered.
 */
export class DeviceError extends IotdrError {
  constructor(code: string, message: string, options: IotdrErrorOptions = {}) {
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

import { IotdrError, type IotdrErrorOptions } from '../common/index.js';

/**
 * Failures of the DNS component. Codes:
 * - `IOTDR_DNS_STALE_EPOCH` (409): a provider was asked to apply a decision older than the one it serves.
 * - `IOTDR_DNS_LISTEN_FAILED` (500): the UDP or TCP socket could not be bound.
 * - `IOTDR_DNS_PROVIDER_UNREACHABLE` (503): the external DNS API did not answer.
 * - `IOTDR_DNS_PROVIDER_REJECTED` (502): the external DNS API answered with an error or an unexpected body.
 * Invalid record state is a `ValidationError` with code `IOTDR_DNS_INVALID_STATE`.
 */
export class DnsError extends IotdrError {
  constructor(code: string, message: string, options: IotdrErrorOptions = {}) {
    super(code, message, options);
    this.name = 'DnsError';
  }
}

export class StaleEpochError extends DnsError {
  constructor(current: { region: string; epoch: number }, requested: { region: string; epoch: number }) {
    super(
      'IOTDR_DNS_STALE_EPOCH',
      `DNS already serves region ${current.region} at epoch ${current.epoch}; refusing region ${requested.region} at epoch ${requested.epoch}`,
      { status: 409, details: { current, requested } },
    );
    this.name = 'StaleEpochError';
  }
}

export class ProviderError extends DnsError {
  constructor(
    code: 'IOTDR_DNS_PROVIDER_UNREACHABLE' | 'IOTDR_DNS_PROVIDER_REJECTED',
    message: string,
    options: IotdrErrorOptions = {},
  ) {
    super(code, message, { status: code === 'IOTDR_DNS_PROVIDER_UNREACHABLE' ? 503 : 502, ...options });
    this.name = 'ProviderError';
  }
}

import {
  type ErrorCatalogue,
  type FieldIssue,
  IotdrError,
  type IotdrErrorOptions,
  ValidationError,
} from '../common/index.js';

/**
 * Every code the DNS component raises. None is an HTTP answer: the controller's provider sink and
 * the name servers meet them, retry and log them; an embedder calling a DnsProvider sees them too.
 */
export const DNS_ERRORS = {
  IOTDR_DNS_STALE_EPOCH: {
    meaning: 'a provider was asked to apply a decision older than the one it serves; nothing changed',
  },
  IOTDR_DNS_LISTEN_FAILED: { meaning: 'the DNS server could not bind its UDP or TCP socket' },
  IOTDR_DNS_PROVIDER_UNREACHABLE: { meaning: 'the PowerDNS API did not answer within `timeoutMs`' },
  IOTDR_DNS_PROVIDER_REJECTED: {
    meaning: 'the PowerDNS API answered with an HTTP error or a body iotdr cannot read',
  },
  IOTDR_DNS_INVALID_STATE: {
    meaning:
      "a record state, a decision or the PowerDNS provider's options are not valid; `issues` names each field",
  },
} as const satisfies ErrorCatalogue;

type DnsErrors = typeof DNS_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends DnsErrors {}
}

export class DnsError extends IotdrError {
  constructor(code: keyof DnsErrors, message: string, options: IotdrErrorOptions = {}) {
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

export function listenFailed(host: string, port: number, cause: unknown): DnsError {
  return new DnsError('IOTDR_DNS_LISTEN_FAILED', `DNS server could not listen on ${host}:${port}`, {
    cause,
    details: { host, port },
  });
}

/** A record state, a decision or provider options that do not validate; `issues` names each field. */
export function invalidDnsState(message: string, issues: FieldIssue[]): ValidationError {
  return new ValidationError(message, issues, 'IOTDR_DNS_INVALID_STATE');
}

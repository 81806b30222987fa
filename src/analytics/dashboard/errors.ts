import { type ErrorCode, IotdrError, type IotdrErrorOptions } from '../../common/index.js';

/** Failures of the dashboard's own routes; their codes are in analytics' catalogue (../errors.ts). */
export class DashboardError extends IotdrError {
  constructor(code: ErrorCode, message: string, options: IotdrErrorOptions = {}) {
    super(code, message, options);
    this.name = 'DashboardError';
  }
}

/** A file outside the dashboard's fixed asset list: 404. */
export function assetNotFound(file: string, known: readonly string[]): DashboardError {
  return new DashboardError('IOTDR_DASHBOARD_ASSET_NOT_FOUND', `no dashboard asset '${file}'`, {
    status: 404,
    details: { assets: [...known] },
  });
}

/** More live-view clients than `maxClients`: 503, so one page left open in many tabs cannot exhaust the server. */
export function tooManyClients(max: number): DashboardError {
  return new DashboardError(
    'IOTDR_DASHBOARD_TOO_MANY_CLIENTS',
    `the live view already serves ${max} clients; close another page or try again later`,
    { status: 503, details: { maxClients: max } },
  );
}

/** One token holding `max` live-view streams already: 429, so one client cannot take every slot. */
export function tooManyStreams(max: number): DashboardError {
  return new DashboardError(
    'IOTDR_DASHBOARD_TOO_MANY_STREAMS',
    `this token already holds ${max} live-view streams; close a page that uses it, or use another token`,
    { status: 429, details: { maxClientsPerToken: max } },
  );
}

/** The control API could not be reached for a routing control: 502. Nothing was switched by us. */
export function controlUnreachable(url: string, cause: unknown): DashboardError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new DashboardError(
    'IOTDR_DASHBOARD_CONTROL_UNREACHABLE',
    `cannot reach the control API at ${url}: ${reason}`,
    { status: 502, details: { controlUrl: url }, cause },
  );
}

/** The control API did not answer a routing control in time: 504. It may still have switched. */
export function controlTimeout(url: string, timeoutMs: number): DashboardError {
  return new DashboardError(
    'IOTDR_DASHBOARD_CONTROL_TIMEOUT',
    `the control API at ${url} did not answer within ${timeoutMs} ms; check the active region before retrying`,
    { status: 504, details: { controlUrl: url, timeoutMs } },
  );
}

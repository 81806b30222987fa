import { type ErrorCode, IotdrError, type IotdrErrorOptions } from '../../common/index.js';
import type { ControlUnreachableError } from '../../failover/index.js';

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

/** No control node could be reached for a routing control (or each answered 502 or 503): 502. Nothing was switched by us. */
export function controlUnreachable(cause: ControlUnreachableError): DashboardError {
  return new DashboardError(
    'IOTDR_DASHBOARD_CONTROL_UNREACHABLE',
    `cannot reach the control API: ${cause.message}`,
    { status: 502, details: cause.details, cause },
  );
}

/** A control node did not answer a routing control in time, and no other did: 504. It may still have switched. */
export function controlTimeout(cause: ControlUnreachableError, timeoutMs: number): DashboardError {
  return new DashboardError(
    'IOTDR_DASHBOARD_CONTROL_TIMEOUT',
    `the control API did not answer within ${timeoutMs} ms (${cause.message}); check the active region before retrying`,
    { status: 504, details: { ...cause.details, timeoutMs }, cause },
  );
}

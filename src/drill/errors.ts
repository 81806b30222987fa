import { type ErrorCatalogue, IotdrError } from '../common/index.js';

/** Every code the drill raises; `iotdr drill` prints them, none is an HTTP answer. */
export const DRILL_ERRORS = {
  IOTDR_DRILL_CONFIG: {
    meaning:
      'the configuration cannot run this drill (one region, or what the fault needs is not configured)',
  },
  IOTDR_DRILL_ABORTED: { meaning: 'the drill was interrupted (Ctrl-C, SIGTERM)' },
  IOTDR_DRILL_NOT_STEADY: {
    meaning: 'the controller moved the fleet before the fault, so the run would measure nothing',
  },
  IOTDR_DRILL_TIMEOUT: { meaning: 'a step of the drill did not finish in its time (the message says which)' },
} as const satisfies ErrorCatalogue;

type DrillErrors = typeof DRILL_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends DrillErrors {}
}

/** What the configuration lacks for this drill, in `message`. */
export function drillConfigError(message: string): IotdrError {
  return new IotdrError('IOTDR_DRILL_CONFIG', message);
}

export function drillAborted(): IotdrError {
  return new IotdrError('IOTDR_DRILL_ABORTED', 'the drill was interrupted');
}

export function notSteady(message: string): IotdrError {
  return new IotdrError('IOTDR_DRILL_NOT_STEADY', message);
}

export function drillTimeout(message: string): IotdrError {
  return new IotdrError('IOTDR_DRILL_TIMEOUT', message);
}

/** An error of the drill itself: it ends the drill's waits at once instead of being retried. */
export function isDrillError(error: unknown): boolean {
  return error instanceof IotdrError && Object.hasOwn(DRILL_ERRORS, error.code);
}

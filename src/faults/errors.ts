import { type ErrorCatalogue, IotdrError } from '../common/index.js';
import type { RegionFault } from './faults.js';

/** Every code fault injection raises. */
export const FAULTS_ERRORS = {
  IOTDR_FAULTS_DISABLED: {
    status: 403,
    meaning: 'a fault was asked of a region (or of analytics) started without `--enable-faults`',
  },
  IOTDR_FAULTS_NOT_RESTORABLE: {
    status: 409,
    meaning: 'the fault cannot be undone in place (broker-crash); the region must be restarted',
  },
} as const satisfies ErrorCatalogue;

type FaultsErrors = typeof FAULTS_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends FaultsErrors {}
}

export class FaultsDisabledError extends IotdrError {
  /** `process`: the command that was started without fault injection. */
  constructor(process: 'region' | 'analytics' = 'region') {
    super(
      'IOTDR_FAULTS_DISABLED',
      `fault injection is off in this ${process}; start it with \`iotdr ${process} --enable-faults\` (the drill does)`,
      { status: 403 },
    );
  }
}

export class FaultNotRestorableError extends IotdrError {
  constructor(fault: RegionFault) {
    super('IOTDR_FAULTS_NOT_RESTORABLE', `${fault} cannot be undone in place; restart the region`, {
      status: 409,
      details: { fault },
    });
  }
}

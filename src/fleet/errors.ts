import { type ErrorCatalogue, IotdrError } from '../common/index.js';

/** Every code the simulated fleet raises; `iotdr fleet`, `up` and `drill` print them. */
export const FLEET_ERRORS = {
  IOTDR_FLEET_ONBOARDING_FAILED: {
    meaning: "the fleet's bulk onboarding job did not succeed, or did not hand out a device's key",
  },
} as const satisfies ErrorCatalogue;

type FleetErrors = typeof FLEET_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends FleetErrors {}
}

export function onboardingFailed(message: string): IotdrError {
  return new IotdrError('IOTDR_FLEET_ONBOARDING_FAILED', message);
}

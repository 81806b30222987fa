/** The simulated fleet (issue 7): devices in worker threads on the device SDK, and their onboarding. */
export {
  type Ceiling,
  type ConnectLoadOptions,
  type ConnectLoadResult,
  connectLoad,
  type LoadIdentity,
  measureCeiling,
} from './ceiling.js';
export { FLEET_ERRORS } from './errors.js';
export { Fleet, type FleetOptions, type FleetSummary, loopbackSource, summaryLine } from './fleet.js';
export {
  activeRegion,
  controlApi,
  type LaunchedFleet,
  type LaunchFleetOptions,
  launchFleet,
  onLoopback,
  platformCredentials,
  regionApis,
} from './launch.js';
export {
  FLEET_TEMPLATE,
  fleetCredentialsPath,
  type OnboardFleetOptions,
  onboardFleet,
  thingNameOf,
} from './onboard.js';
export { ensurePolicy, type PolicyOutcome } from './policy.js';
export type { DeviceAuth, DeviceRecord, FleetDevice } from './types.js';

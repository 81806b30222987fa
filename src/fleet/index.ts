/** The simulated fleet (issue 7): devices in worker threads on the device SDK, and their onboarding. */
export { Fleet, type FleetOptions, type FleetSummary, summaryLine } from './fleet.js';
export {
  activeRegion,
  type LaunchedFleet,
  type LaunchFleetOptions,
  launchFleet,
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
export type { DeviceAuth, DeviceRecord, FleetDevice } from './types.js';

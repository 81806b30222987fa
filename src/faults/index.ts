/**
 * Fault injection inside a region (`--enable-faults`): the faults a drill makes for real, and the
 * region API's routes that make and restore them.
 */

export { FAULTS_ERRORS, FaultNotRestorableError, FaultsDisabledError } from './errors.js';
export {
  type ActiveFault,
  APP_TARGET_PATH,
  DRILL_FAULTS,
  type DrillFault,
  FAULT_ROUTES,
  type FaultTargets,
  faultRoutes,
  REGION_FAULTS,
  type RegionFault,
  RegionFaults,
} from './faults.js';

/** Fault injection and, with the drill, the RTO/RPO report (DESIGN.md §11). */

export { type DrillConfig, drillConfig } from './config.js';
export { type DrillOptions, runDrill } from './drill.js';
export {
  type ActiveFault,
  APP_TARGET_PATH,
  DRILL_FAULTS,
  type DrillFault,
  FaultNotRestorableError,
  FaultsDisabledError,
  type FaultTargets,
  faultRoutes,
  REGION_FAULTS,
  type RegionFault,
  RegionFaults,
} from './faults.js';
export {
  type DrillReport,
  type FailbackMeasure,
  passed,
  percentile,
  renderReport,
  type SwitchMeasure,
} from './report.js';

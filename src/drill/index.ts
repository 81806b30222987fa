/** The drill and its RTO/RPO report (docs/architecture.md §5.5). */

export { type DrillConfig, drillConfig } from './config.js';
export {
  CONTROL_LEADER_CRASH,
  type DrillOptions,
  type DrillPlatform,
  type DrillPlatformOptions,
  NATS_NODE_CRASH,
  runDrill,
} from './drill.js';
export { DRILL_ERRORS } from './errors.js';
export {
  type DrillReport,
  type FailbackMeasure,
  passed,
  percentile,
  renderReport,
  type SwitchMeasure,
} from './report.js';

/**
 * The `iotdr` package: the composition roots of each process, for embedding them in a program of
 * your own (the `iotdr` command runs the same). Devices use `iotdr/device`.
 */
export { type AnalyticsOptions, type RunningAnalytics, startAnalytics } from './analytics/index.js';
export { type ControlOptions, type RunningControl, startControl } from './control.js';
export { type NameServerOptions, type RunningNameServer, startNameServer } from './nameserver.js';
export {
  type PlatformOptions,
  type ProcessEvent,
  type RunningPlatform,
  startPlatform,
} from './platform.js';
export { type RegionOptions, type RunningRegion, startRegion } from './region.js';

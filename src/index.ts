/**
 * The `iotdr` package: the composition roots of each process, for embedding them in a program of
 * your own (the `iotdr` command runs the same). Devices use `iotdr/device`.
 */
export {
  type AnalyticsOptions,
  type ControlOptions,
  type NameServerOptions,
  type PlatformOptions,
  type ProcessEvent,
  type RegionOptions,
  type RunningAnalytics,
  type RunningControl,
  type RunningNameServer,
  type RunningPlatform,
  type RunningRegion,
  startAnalytics,
  startControl,
  startNameServer,
  startPlatform,
  startRegion,
} from './processes/index.js';

/** Checkers, the failover controller, routing controls, the decision log and the switch executor. */

export { type CheckedRegion, Checker, type CheckerOptions, type ExtraHealthUrl } from './checker.js';
export { HttpObservationSink, type HttpObservationSinkOptions } from './client.js';
export { buildControlApi, type ControlApiOptions } from './control-api.js';
export {
  FailoverController,
  type FailoverControllerOptions,
  type StateListener,
  type StepRecorder,
  type SwitchActions,
} from './controller.js';
export {
  FailoverConfigError,
  FailoverStoreError,
  NoDecisionYetError,
  NoFailbackTargetError,
  NoOverrideError,
  ObservationDeliveryError,
  UnknownCheckerError,
  UnknownObservedRegionError,
  UnknownRegionError,
} from './errors.js';
export {
  DEFAULT_WEBHOOK_RETRY,
  type RetryPolicy,
  SwitchExecutor,
  type SwitchExecutorOptions,
  type Webhook,
} from './executor.js';
export { DecisionFeed, type ServedDecision } from './feed.js';
export {
  decisionRoutes,
  EVENT_TYPES,
  failoverRoutes,
  MAX_DECISION_WAIT_MS,
  MAX_OBSERVATIONS_PER_REPORT,
  observationSchema,
} from './http.js';
export { registerFailoverMetrics } from './metrics.js';
export {
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_CHECKER_CRITICAL,
  DEFAULT_EVALUATE_EVERY_MS,
  DEFAULT_FAILURE_THRESHOLD,
  DEFAULT_RECOVERY_THRESHOLD,
  DEFAULT_STABLE_PERIOD_MS,
  DISCONNECT_MODES,
  type DisconnectMode,
  defaultObservationMaxAgeMs,
  FAILBACK_MODES,
  type FailbackMode,
  MIN_CHECK_INTERVAL_MS,
  quorumOf,
} from './options.js';
export { type Assessment, assessHealth } from './probe.js';
export { DEFAULT_PROVIDER_RETRY, ProviderSink, type ProviderSinkOptions } from './provider-sink.js';
export { FailoverStore, MAX_EVENTS_PAGE } from './store.js';
export {
  type CheckerView,
  type ControllerMode,
  type Decision,
  type DecisionSink,
  type Degradation,
  type FailingCheck,
  type FailoverEvent,
  type FailoverRegion,
  type FailoverState,
  type Observation,
  type ObservationSink,
  type Override,
  type ProbeOutcome,
  type RegionHealth,
  type RegionHealthStatus,
  SWITCH_STEPS,
  type SwitchEvent,
  type SwitchStep,
  type SwitchTimings,
  type SwitchTrigger,
  systemTimers,
  type Timers,
} from './types.js';

/** Checkers, the failover controller, routing controls, the decision log and the switch executor. */

export { type CheckedRegion, Checker, type CheckerOptions, type ExtraHealthUrl } from './checker.js';
export {
  ControlClient,
  type ControlEndpoint,
  type ControlRequest,
  FanOutSink,
  HttpObservationSink,
  type HttpObservationSinkOptions,
} from './client.js';
export {
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_CHECKER_ID,
  DEFAULT_DEGRADED_BUDGET_MS,
  DEFAULT_DISCONNECT_ON_FAILOVER,
  DEFAULT_FAILBACK,
  DEFAULT_FAILURE_THRESHOLD,
  DEFAULT_GIVE_UP_TIMEOUTS,
  DEFAULT_RECOVERY_THRESHOLD,
  DEFAULT_STABLE_PERIOD_MS,
  DISCONNECT_MODES,
  type DisconnectMode,
  FAILBACK_MODES,
  FAILOVER_LIMITS,
  type FailbackMode,
  type FailoverConfig,
  failoverGiveUpMs,
  failoverSection,
  MIN_CHECK_INTERVAL_MS,
  type WebhookConfig,
} from './config.js';
export {
  EVENT_TYPES,
  FAILOVER_ROUTES,
  MAX_OBSERVATIONS_PER_REPORT,
  observationSchema,
} from './contracts.js';
export {
  FailoverController,
  type FailoverControllerOptions,
  type StateListener,
  type StepRecorder,
  type SwitchActions,
} from './controller.js';
export {
  ControlUnreachableError,
  FAILOVER_ERRORS,
  FailoverConfigError,
  FailoverStoreError,
  LeaderUnreachableError,
  NoDecisionYetError,
  type NodeFailure,
  NoFailbackTargetError,
  NoLeaderError,
  NoOverrideError,
  NotLeaderError,
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
  type FailoverRoutesOptions,
  failoverRoutes,
  RELAYED_BY_HEADER,
  type RelayedAnswer,
  type RelayedRequest,
} from './http.js';
export { type Leadership, type LeaderView, soleLeader } from './leadership.js';
export { registerFailoverMetrics } from './metrics.js';
export {
  DEFAULT_CHECKER_CRITICAL,
  DEFAULT_EVALUATE_EVERY_MS,
  defaultObservationMaxAgeMs,
  quorumOf,
} from './options.js';
export { type Assessment, assessHealth } from './probe.js';
export { DEFAULT_PROVIDER_RETRY, ProviderSink, type ProviderSinkOptions } from './provider-sink.js';
export {
  type ControlStore,
  type EventQuery,
  FailoverStore,
  MAX_EVENTS_PAGE,
  type StoredControl,
} from './store.js';
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
  type NewEvent,
  type Observation,
  type ObservationSink,
  type Override,
  type PersistedState,
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

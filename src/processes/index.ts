/**
 * The composition roots: each process of the platform wired from the components — a region, the
 * control process, an etcd member, a region's NATS server, analytics, a name server, a broker node
 * or worker, and the supervisor that runs them all (`iotdr up`, `npm start`). Only the CLI, the
 * package's own front door and tests import them; no component does.
 */
export {
  type AnalyticsOptions,
  analyticsDbPath,
  type RunningAnalytics,
  startAnalytics,
} from './analytics.js';
export {
  type BrokerNodeSpec,
  brokerListenOf,
  brokerWorkers,
  type RunningBrokerNode,
  regionBrokerOptions,
  regionRedis,
  startBrokerNode,
} from './broker-node.js';
export {
  CONTROL_SITE,
  type ControlOptions,
  controlSiteOf,
  type RunningControl,
  startControl,
  zoneStateOf,
} from './control.js';
export { PROCESSES_ERRORS } from './errors.js';
export {
  checkEtcdData,
  type EtcdCluster,
  type EtcdMemberOptions,
  type ForeignEtcdData,
  type RunningEtcdMember,
  startEtcdMember,
} from './etcd.js';
export { NATS_START_WAIT_MS, natsStreamLeader, openRegionBus, type RegionBusOptions } from './event-bus.js';
export {
  type NameServerOptions,
  nameServerConfig,
  type RunningNameServer,
  startNameServer,
} from './nameserver.js';
export {
  checkNatsData,
  type ForeignNatsData,
  type NatsServerOptions,
  type NatsServerSet,
  natsServerAnswers,
  natsServerUrl,
  type RunningNatsServer,
  startNatsServer,
} from './nats.js';
export {
  delayText,
  eventLine,
  type LiveInfo,
  type PlatformOptions,
  type PlatformProcess,
  type ProcessEvent,
  type RunningPlatform,
  roleOf,
  START_TIMEOUT_MS,
  startDrillPlatform,
  startPlatform,
} from './platform.js';
export {
  ANALYTICS_SITE,
  loadOrCreateAdminToken,
  loadOrCreateTlsTicketSecret,
  loadOrCreateToken,
  openStore,
  type RegionOptions,
  type RunningRegion,
  startRegion,
} from './region.js';
export { REGION_DOCUMENTS, regionRegistryService } from './registry.js';
export { type SiteLinks, type SiteNames, siteCredentials, siteLinks } from './sites.js';
export { Supervisor, type SupervisorOptions } from './supervisor.js';

export type { Asset, AssetFile } from './assets.js';
export { ASSET_FILES, CONTENT_SECURITY_POLICY, loadAssets } from './assets.js';
export { DashboardError } from './errors.js';
export { LiveView } from './live.js';
export type { DashboardFleet, DashboardOptions, LiveViewOptions } from './options.js';
export {
  DEFAULT_CONTROL_POLL_MS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_CLIENTS,
  DEFAULT_MAX_CLIENTS_PER_TOKEN,
  DEFAULT_QUERY_POLL_MS,
  DEFAULT_REGION_POLL_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_RESEND_MS,
  DEFAULT_ROUTING_TIMEOUT_MS,
} from './options.js';
export { dashboardRoutes } from './routes.js';
export type {
  ActiveView,
  CheckStatus,
  ControlView,
  LiveSnapshot,
  RegionHealthView,
  RegionView,
  ReplicationLinkView,
  SwitchView,
} from './snapshot.js';
export { LiveStream, type LiveStreamOptions, type Room } from './sse.js';

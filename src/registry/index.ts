/**
 * The device registry of a region: its own entities (things, types, groups, certificates, policies,
 * tokens, device tokens, shadows), the service every write goes through, the stores, the change log
 * and the region's management API. Documents of other components (topic rules, command-and-control
 * documents) it stores as registered `DocumentKind`s; roles and authentication are the HTTP
 * toolkit's (src/http).
 */
export {
  DEFAULT_POSTGRES_POOL_SIZE,
  DEFAULT_POSTGRES_SCHEMA,
  DEFAULT_SQLITE_SYNCHRONOUS,
  DEFAULT_STORE_ENGINE,
  POSTGRES_SCHEMA_PATTERN,
  type PostgresStoreConfig,
  SQLITE_SYNCHRONOUS_MODES,
  type SqliteStoreConfig,
  type SqliteSynchronous,
  STORE_ENGINES,
  STORE_LIMITS,
  type StoreConfig,
  storeSchema,
} from './config.js';
export { REGISTRY_ERRORS, type ShadowErrorCode } from './errors.js';
export { HybridClock } from './hlc.js';
export {
  buildRegistryApi,
  CHANGES_PAGE,
  CHANGES_WAIT_MS,
  changeSchema,
  entitySchema,
  REGISTRY_ROUTES,
  type RegistryApiOptions,
  regionMetrics,
} from './http/index.js';
export { type DocumentKind, DocumentKinds, type EntityProblem } from './kinds.js';
export {
  attributesSchema,
  CA_STATUSES,
  CERTIFICATE_STATUSES,
  type CertificateStatus,
  type DeviceTokenDoc,
  KIND,
  type Kind,
  policyNameSchema,
  thingGroupNameSchema,
  thingNameSchema,
  tokenScopeSchema,
} from './model.js';
export {
  type CompiledPolicySet,
  compilePolicies,
  type Decision,
  evaluate,
  type IotAction,
  type PolicyContext,
  type PolicyDocument,
  parsePolicyDocument,
} from './policy/index.js';
export {
  type CaCertificate,
  type Certificate,
  type CreatedCertificate,
  type DeviceTokenInfo,
  generateToken,
  type IssuedDeviceToken,
  type IssuedToken,
  LIST_ALL_PAGE,
  type Page,
  type PageRequest,
  type Policy,
  type PutResult,
  parseToken,
  RegistryService,
  type RegistryServiceOptions,
  type Thing,
  type ThingGroup,
  type ThingType,
  TOKEN_CACHE_TTL_MS,
  type TokenInfo,
  type WriteTx,
} from './service/index.js';
export {
  clientTokenOf as shadowClientTokenOf,
  invalidShadow,
  isJsonObject,
  type JsonObject,
  type JsonValue,
  SHADOW_MAX_CLIENT_TOKEN_BYTES,
  SHADOW_MAX_DEPTH,
  SHADOW_MAX_REQUEST_BYTES,
  SHADOW_MAX_STATE_BYTES,
  type ShadowChange,
  type ShadowDeleteAccepted,
  type ShadowDelta,
  type ShadowDoc,
  type ShadowDocument,
  ShadowError,
  type ShadowSnapshot,
  type ShadowUpdateAccepted,
  shadowChange,
  shadowDelta,
  shadowTooLarge,
} from './service/shadows.js';
export {
  type ChangeRecord,
  compareHlc,
  type Doc,
  type EntityRecord,
  type Hlc,
  type LocalRecord,
  type Mutation,
  PostgresStore,
  type RegistryStore,
  type ScanOptions,
  SqliteStore,
} from './store/index.js';

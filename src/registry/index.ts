export { HybridClock } from './hlc.js';
export { buildRegistryApi, type RegistryApiOptions } from './http/index.js';
export {
  CA_STATUSES,
  CERTIFICATE_STATUSES,
  type CertificateStatus,
  KIND,
  type Kind,
  ROLES,
  type Role,
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
  generateToken,
  type IssuedToken,
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
} from './service/index.js';
export {
  type ChangeRecord,
  compareHlc,
  type EntityRecord,
  type Hlc,
  type Mutation,
  PostgresStore,
  type RegistryStore,
  SqliteStore,
} from './store/index.js';

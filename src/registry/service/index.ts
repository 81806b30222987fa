export type {
  CertificateThing,
  GroupPolicy,
  InheritedPolicies,
  ThingPrincipal,
} from './associations.js';
export type { CaCertificate, Certificate, CreatedCertificate } from './certificates.js';
export { isRevocation, tombstoneProblem } from './certificates.js';
export type { PutResult, WriteTx } from './core.js';
export type { DeviceTokenInfo, IssuedDeviceToken } from './device-tokens.js';
export type { Policy, PolicyPrincipal } from './policies.js';
export {
  DEFAULT_PAGE_SIZE,
  LIST_ALL_PAGE,
  MAX_CHANGES_WAIT_MS,
  MAX_PAGE_SIZE,
  type Page,
  type PageRequest,
  RegistryService,
  type RegistryServiceOptions,
} from './service.js';
export type { GroupMember, Thing, ThingGroup, ThingType } from './things.js';
export { generateToken, type IssuedToken, parseToken, TOKEN_CACHE_TTL_MS, type TokenInfo } from './tokens.js';

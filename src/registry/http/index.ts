export {
  ADMIN,
  authenticate,
  type Principal,
  READ,
  REPLICATE,
  staticTokens,
  type TokenVerifier,
  WRITE,
} from './auth.js';
export { changeSchema, entitySchema, problemSchema } from './schemas.js';
export { buildRegistryApi, type RegistryApiOptions, regionMetrics } from './server.js';

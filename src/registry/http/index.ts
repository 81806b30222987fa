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
export { parseJsonBody } from './json.js';
export { errorHandler, type Problem, problem, sendProblem } from './problem.js';
export { changeSchema, entitySchema, problemSchema } from './schemas.js';
export { buildRegistryApi, type RegistryApiOptions, regionMetrics } from './server.js';

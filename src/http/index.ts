/**
 * The HTTP toolkit every iotdr API is built on: the server and its conventions (request ids, body
 * limits, JSON only, problem+json answers with stable codes, authentication first), the route
 * contracts the servers register and the client calls, and that client.
 */
export { type ApiOptions, buildApi, type MetricsSource } from './api.js';
export {
  type Access,
  type AccessRule,
  ADMIN,
  type AuthenticateOptions,
  authenticate,
  authorizeBearer,
  bearerToken,
  CNC_OPERATIONS,
  type CncOperation,
  decideAccess,
  decideSiteAccess,
  type Principal,
  READ,
  REPLICATE,
  ROLES,
  type Role,
  staticTokens,
  type TokenScope,
  type TokenVerifier,
  WRITE,
} from './auth.js';
export {
  ApiClient,
  CALL_TIMEOUT_MS,
  CallError,
  type CallFailure,
  type CallInput,
  type CallOptions,
  type RawAnswer,
  sendRequest,
  systemCause,
} from './client.js';
export {
  type AnswerOf,
  defineRoute,
  type Expect,
  type HttpMethod,
  type RawBody,
  type RequestOf,
  type ResponseSchemas,
  type RouteContract,
  type RouteDefinition,
  type RouteSchemaOf,
  routeOf,
  type SameType,
  type SuccessOf,
} from './contract.js';
export { HTTP_ERRORS } from './errors.js';
export { parseJsonBody } from './json.js';
export { errorHandler, type Problem, problem, sendProblem } from './problem.js';
export { problemAnswers, problemSchema } from './problem-schema.js';
export { type ApiServerOptions, createApiServer, DEFAULT_BODY_LIMIT } from './server.js';
export {
  relayAgent,
  type SiteTls,
  siteAgent,
  siteKindCheck,
  siteOfSocket,
  siteServerOptions,
  trustingAgent,
} from './tls.js';

/**
 * The HTTP toolkit every iotdr API is built on: the server and its conventions (request ids, body
 * limits, JSON only, problem+json answers with stable codes, authentication first).
 */
export { parseJsonBody } from './json.js';
export { errorHandler, type Problem, problem, sendProblem } from './problem.js';
export { type ApiServerOptions, createApiServer, DEFAULT_BODY_LIMIT } from './server.js';

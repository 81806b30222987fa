import type { ErrorCatalogue } from '../common/index.js';

/**
 * Every code the HTTP toolkit answers with itself: what fastify refuses before a route runs,
 * authentication, and what the API client makes of an answer it cannot use.
 */
export const HTTP_ERRORS = {
  IOTDR_HTTP_MALFORMED_BODY: { status: 400, meaning: 'the body is not acceptable JSON' },
  IOTDR_HTTP_BODY_TOO_LARGE: { status: 413, meaning: "the body is over the server's body limit" },
  IOTDR_HTTP_UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'the body is not application/json' },
  IOTDR_HTTP_NOT_FOUND: { status: 404, meaning: 'no route has this method and path' },
  IOTDR_HTTP_BAD_REQUEST: {
    status: 400,
    meaning: 'fastify refused the request for another reason (usually 400; it keeps the 4xx fastify gives)',
  },
  IOTDR_INTERNAL: { status: 500, meaning: 'a bug: the log has the details under the requestId' },
  IOTDR_AUTH_REQUIRED: { status: 401, meaning: 'the route needs a bearer token and none was sent' },
  IOTDR_AUTH_INVALID_TOKEN: { status: 401, meaning: 'the bearer token is unknown, revoked or expired' },
  IOTDR_AUTH_FORBIDDEN: { status: 403, meaning: "the token's role may not call this route" },
  IOTDR_AUTH_SCOPED_TOKEN: {
    status: 403,
    meaning: 'a token scoped to command and control called a route outside it',
  },
  IOTDR_AUTH_SITE_FORBIDDEN: {
    status: 403,
    meaning: "a site's certificate was presented on a route that is not for sites of its kind",
  },
  IOTDR_AUTH_SITE_REQUIRED: {
    status: 403,
    meaning: 'over mutual TLS, a link between sites takes a site certificate, not a link token',
  },
  IOTDR_CLI_UNREACHABLE: { meaning: 'the API client could not reach an iotdr API (refused, timed out, TLS)' },
  IOTDR_CLI_REQUEST_FAILED: {
    meaning: 'an API answered an error that is not problem+json (not iotdr, or a proxy in between)',
  },
  IOTDR_HTTP_UNEXPECTED_RESPONSE: {
    meaning: "an API's answer does not match the route's contract (another iotdr version, or a bug)",
  },
} as const satisfies ErrorCatalogue;

type HttpErrors = typeof HTTP_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends HttpErrors {}
}

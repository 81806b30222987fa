import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { type ErrorCode, type FieldIssue, IotdrError } from '../common/index.js';

/** application/problem+json (RFC 9457) with iotdr's stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  requestId?: string;
  errors?: FieldIssue[];
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function problem(
  status: number,
  code: ErrorCode,
  detail: string,
  extra: { errors?: FieldIssue[]; [k: string]: unknown } = {},
): Problem {
  const out: Problem = {
    type: `urn:iotdr:problem:${code
      .replace(/^IOTDR_/, '')
      .toLowerCase()
      .replace(/_/g, '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    ...extra,
  };
  if (out.errors?.length === 0) delete out.errors;
  return out;
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, p: Problem): FastifyReply {
  return reply
    .code(p.status)
    .type('application/problem+json')
    .serializer(JSON.stringify)
    .send({ ...p, instance: request.url.split('?')[0], requestId: String(request.id) });
}

/** Maps every error a route or fastify itself raises to a problem; nothing else leaves the server. */
export function errorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  if (error instanceof IotdrError) {
    if (error.status >= 500) request.log.error({ err: error }, error.message);
    return sendProblem(
      request,
      reply,
      problem(error.status, error.code, error.message, { errors: error.issues, ...error.details }),
    );
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = error.validationContext ?? 'body';
    const errors = error.validation.flatMap((v) => {
      const base = [where, ...v.instancePath.split('/').filter(Boolean)];
      const keys = (v.params as { keys?: unknown } | undefined)?.keys;
      // Name each unknown field rather than the object that holds it.
      if (v.keyword === 'unrecognized_keys' && Array.isArray(keys) && keys.length > 0) {
        return keys.map((k) => ({ path: [...base, String(k)].join('.'), message: 'unknown field' }));
      }
      return [{ path: base.join('.'), message: v.message ?? 'invalid' }];
    });
    const detail = `invalid ${where}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`;
    return sendProblem(request, reply, problem(400, 'IOTDR_VALIDATION_FAILED', detail, { errors }));
  }
  if (isResponseSerializationError(error)) {
    request.log.error({ err: error, issues: error.cause.issues }, 'response does not match its schema');
    return sendProblem(request, reply, problem(500, 'IOTDR_INTERNAL', 'internal error'));
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return sendProblem(request, reply, problem(413, 'IOTDR_HTTP_BODY_TOO_LARGE', error.message));
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return sendProblem(
        request,
        reply,
        problem(415, 'IOTDR_HTTP_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json'),
      );
  }
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return sendProblem(request, reply, problem(error.statusCode, 'IOTDR_HTTP_BAD_REQUEST', error.message));
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendProblem(request, reply, problem(500, 'IOTDR_INTERNAL', 'internal error'));
}

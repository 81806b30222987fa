import type { FastifyRequest } from 'fastify';
import secureJson from 'secure-json-parse';
import { ValidationError } from '../common/index.js';

/**
 * The JSON body parser. An empty body is no body (clients send `content-type: application/json`
 * on a DELETE too); routes that need one say so in their schema. Keys that would poison a
 * prototype (`__proto__`, `constructor.prototype`) are refused, and the error says why.
 */
export function parseJsonBody(
  _request: FastifyRequest,
  body: string | Buffer,
  done: (error: Error | null, value?: unknown) => void,
): void {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.trim().length === 0) {
    done(null, undefined);
    return;
  }
  try {
    done(null, secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' }));
  } catch (error) {
    const reason = (error as Error).message;
    done(
      new ValidationError(
        `the body is not acceptable JSON: ${reason}`,
        [{ path: 'body', message: reason }],
        'IOTDR_HTTP_MALFORMED_BODY',
      ),
    );
  }
}

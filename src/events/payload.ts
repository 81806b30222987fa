import type { EventPayload } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON stays JSON: bytes that are valid UTF-8 and parse as JSON become `{type:'json'}`; anything
 * else (binary, plain text, truncated JSON) is kept exactly, as base64.
 */
export function encodePayload(bytes: Uint8Array): EventPayload {
  const parsed = parseJson(bytes);
  return parsed.ok
    ? { type: 'json', value: parsed.value }
    : { type: 'base64', data: Buffer.from(bytes).toString('base64') };
}

/** The payload's bytes (JSON re-serialized, so whitespace may differ from what was sent). */
export function payloadBytes(payload: EventPayload): Buffer {
  return payload.type === 'json'
    ? Buffer.from(JSON.stringify(payload.value), 'utf8')
    : Buffer.from(payload.data, 'base64');
}

/** The bytes as JSON, when they are UTF-8 JSON text. */
export function parseJson(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false } {
  if (bytes.length === 0) return { ok: false };
  try {
    return { ok: true, value: JSON.parse(utf8.decode(bytes)) };
  } catch {
    return { ok: false };
  }
}

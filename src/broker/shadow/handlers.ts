import secureJson from 'secure-json-parse';
import {
  invalidShadow,
  isJsonObject,
  type RegistryService,
  SHADOW_MAX_REQUEST_BYTES,
  shadowClientTokenOf,
  shadowTooLarge,
} from '../../registry/index.js';
import { changeKey, type Publication, shadowTopic } from './messages.js';

/**
 * One handler per request topic. Each validates the payload, calls the registry service and
 * returns what to publish; a thrown error becomes the `…/rejected` reply. `claim` takes the
 * publications the service's commit produced (delta, documents, delete notice) so the handler
 * publishes them after its own reply, and the commit listener does not publish them again.
 */
export interface HandlerContext {
  service: RegistryService;
  thing: string;
  payload: Buffer;
  claim(key: string): Publication[] | undefined;
}

export interface HandlerResult {
  publications: Publication[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The payload as JSON: undefined when empty (get and delete take an empty message). Prototype
 * keys are refused, so nothing a device sends can reach an object's prototype.
 */
export function parsePayload(payload: Buffer): unknown {
  if (payload.length > SHADOW_MAX_REQUEST_BYTES)
    throw shadowTooLarge(payload.length, SHADOW_MAX_REQUEST_BYTES);
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    throw invalidShadow('Unsupported document encoding; supported encoding is UTF-8');
  }
  if (text.trim().length === 0) return undefined;
  try {
    return secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch {
    throw invalidShadow('Invalid JSON');
  }
}

/** The clientToken of a payload, when it has a valid one (for replies, rejections included). */
export function payloadClientToken(payload: Buffer): string | undefined {
  try {
    return shadowClientTokenOf(parsePayload(payload));
  } catch {
    return undefined;
  }
}

/** `…/get`: an empty message or `{ clientToken }`; answers the document with its delta. */
export async function handleGet(ctx: HandlerContext): Promise<HandlerResult> {
  const request = parsePayload(ctx.payload);
  if (request !== undefined) {
    if (!isJsonObject(request)) throw invalidShadow('The request must be a JSON object');
    const unknown = Object.keys(request).find((k) => k !== 'clientToken');
    if (unknown !== undefined) throw invalidShadow(`Unknown field: '${unknown}'; allowed: clientToken`);
    if (request.clientToken !== undefined && shadowClientTokenOf(request) === undefined) {
      throw invalidShadow('Invalid clientToken: a string of 1 to 64 bytes');
    }
  }
  const document = await ctx.service.getShadow(ctx.thing);
  const clientToken = shadowClientTokenOf(request);
  return {
    publications: [
      {
        topic: shadowTopic(ctx.thing, 'get/accepted'),
        payload: { ...document, ...(clientToken === undefined ? {} : { clientToken }) },
      },
    ],
  };
}

/** `…/update`: merges the request; answers what was accepted, then the delta and documents. */
export async function handleUpdate(ctx: HandlerContext): Promise<HandlerResult> {
  const request = parsePayload(ctx.payload);
  if (request === undefined) throw invalidShadow('Missing required node: state');
  const accepted = await ctx.service.updateShadow(ctx.thing, request);
  // Claimed before any await: the commit listener's own flush waits for the next turn.
  const derived = ctx.claim(changeKey(ctx.thing, 'upsert', accepted.version)) ?? [];
  return {
    publications: [
      { topic: shadowTopic(ctx.thing, 'update/accepted'), payload: { ...accepted } },
      ...derived,
    ],
  };
}

/** `…/delete`: an empty message or `{ version?, clientToken? }`. */
export async function handleDelete(ctx: HandlerContext): Promise<HandlerResult> {
  const request = parsePayload(ctx.payload);
  const accepted = await ctx.service.deleteShadow(ctx.thing, request);
  // The commit's own delete notice carries no clientToken; this reply replaces it.
  ctx.claim(changeKey(ctx.thing, 'delete', accepted.version));
  return {
    publications: [{ topic: shadowTopic(ctx.thing, 'delete/accepted'), payload: { ...accepted } }],
  };
}

import { type ChangeRecord, KIND, type ShadowDoc, ShadowError, shadowChange } from '../../registry/index.js';

/** Topic root of every shadow topic: `$iotdr/things/{thing}/shadow/…`. */
export const SHADOW_TOPIC_PREFIX = '$iotdr/things/';

export type ShadowOperation = 'get' | 'update' | 'delete';

/** One message the engine publishes. */
export interface Publication {
  topic: string;
  payload: Record<string, unknown>;
}

export function shadowTopic(thingName: string, suffix: string): string {
  return `${SHADOW_TOPIC_PREFIX}${thingName}/shadow/${suffix}`;
}

const REQUEST_TOPIC = /^\$iotdr\/things\/([^/]+)\/shadow\/(get|update|delete)$/;

/**
 * The thing and operation of a request topic; undefined for any other topic (the engine's own
 * reply topics included). A segment with a wildcard or NUL cannot be replied to and is ignored.
 */
export function parseRequestTopic(topic: string): { thing: string; operation: ShadowOperation } | undefined {
  const match = REQUEST_TOPIC.exec(topic);
  if (!match?.[1] || !match[2] || /[+#\0]/.test(match[1])) return undefined;
  return { thing: match[1], operation: match[2] as ShadowOperation };
}

/** AWS IoT's error response document, with iotdr's stable code beside AWS's numeric one. */
export function rejection(
  error: unknown,
  timestamp: number,
  clientToken: string | undefined,
): { payload: Record<string, unknown>; internal: boolean } {
  const known = error instanceof ShadowError;
  const status = known ? error.status : 500;
  const payload: Record<string, unknown> = {
    code: status,
    message: known ? error.message : 'Internal service failure',
    timestamp,
    errorCode: known ? error.code : 'IOTDR_SHADOW_INTERNAL',
  };
  if (clientToken !== undefined) payload.clientToken = clientToken;
  return { payload, internal: !known };
}

/**
 * What devices hear about a committed shadow change, from whichever source (MQTT, HTTP,
 * replication): `update/delta` when the delta changed and `update/documents` for an upsert,
 * `delete/accepted` for a delete.
 */
export function publicationsFor(change: ChangeRecord): Publication[] {
  if (change.kind !== KIND.shadow) return [];
  if (change.op === 'delete') {
    // A tombstone's version is the deleted shadow's version + 1 (the registry's rule for deletes).
    return [
      {
        topic: shadowTopic(change.key, 'delete/accepted'),
        payload: { version: change.version - 1, timestamp: Math.floor(change.committedAt / 1000) },
      },
    ];
  }
  if (change.after === null) return [];
  const derived = shadowChange(change.after as unknown as ShadowDoc, change.version);
  const token = derived.clientToken === undefined ? {} : { clientToken: derived.clientToken };
  const out: Publication[] = [];
  if (derived.delta) {
    out.push({
      topic: shadowTopic(change.key, 'update/delta'),
      payload: {
        state: derived.delta.state,
        metadata: derived.delta.metadata,
        version: change.version,
        timestamp: derived.timestamp,
        ...token,
      },
    });
  }
  out.push({
    topic: shadowTopic(change.key, 'update/documents'),
    payload: {
      previous: derived.previous,
      current: derived.current,
      timestamp: derived.timestamp,
      ...token,
    },
  });
  return out;
}

/** Key under which the publications of one committed change wait: thing, operation, shadow version. */
export function changeKey(thing: string, op: 'upsert' | 'delete', shadowVersion: number): string {
  return `${thing}\n${op}\n${shadowVersion}`;
}

export function keyOfChange(change: ChangeRecord): string {
  return changeKey(change.key, change.op, change.op === 'delete' ? change.version - 1 : change.version);
}

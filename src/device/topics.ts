import { z } from 'zod';
import { DeviceError } from './errors.js';

/** Where every broker publishes the failover notice, retained (docs/broker.md). */
export const NOTICE_TOPIC = '$iotdr/notices/failover';

export const noticeSchema = z.object({
  activeRegion: z.string().min(1),
  epoch: z.number().int().min(0),
  at: z.string(),
});

/** A command as the region delivers it on `$iotdr/things/{thing}/commands/{commandId}` (docs/commands.md). */
export interface DeviceCommand {
  commandId: string;
  name: string;
  payload: unknown;
  createdAt?: string;
  deadlineAt?: string;
  attempt?: number;
}

export const commandSchema = z.object({
  commandId: z.string().min(1).max(128),
  name: z.string().min(1),
  payload: z.unknown(),
  createdAt: z.string().optional(),
  deadlineAt: z.string().optional(),
  attempt: z.number().int().optional(),
});

/** The device's answer to a command, sent on `…/commands/{commandId}/reply`. */
export interface CommandReply {
  status: 'succeeded' | 'failed';
  result?: unknown;
  error?: string;
}

export const thingTopics = (thing: string) => {
  const shadow = `$iotdr/things/${thing}/shadow`;
  return {
    /** Exact: the command id is in the message (a pattern per device would cost every publish on a broker spread over hosts). */
    commands: `$iotdr/things/${thing}/commands`,
    reply: (commandId: string) => `$iotdr/things/${thing}/commands/${commandId}/reply`,
    shadowGet: `${shadow}/get`,
    shadowUpdate: `${shadow}/update`,
    shadowReplies: [
      `${shadow}/get/accepted`,
      `${shadow}/get/rejected`,
      `${shadow}/update/accepted`,
      `${shadow}/update/rejected`,
    ],
  };
};

const MAX_TOPIC_BYTES = 65_535;

/** Checks a topic a device publishes to: no wildcards, no NUL, not empty (MQTT 3.1.1 §4.7.3). */
export function checkTopic(topic: string): void {
  if (
    typeof topic !== 'string' ||
    topic.length === 0 ||
    /[+#]/.test(topic) ||
    topic.includes('\u0000') ||
    Buffer.byteLength(topic) > MAX_TOPIC_BYTES
  )
    throw new DeviceError(
      'IOTDR_DEVICE_INVALID_TOPIC',
      `cannot publish to ${JSON.stringify(topic)}: a topic is 1..65535 bytes without +, # or NUL`,
    );
}

/** Checks a subscription filter: `#` only last, `+` and `#` only as whole levels (MQTT 3.1.1 §4.7.1). */
export function checkFilter(filter: string): void {
  const levels = typeof filter === 'string' ? filter.split('/') : [];
  const ok =
    typeof filter === 'string' &&
    filter.length > 0 &&
    !filter.includes('\u0000') &&
    levels.every((l, i) =>
      l.includes('#') ? l === '#' && i === levels.length - 1 : !l.includes('+') || l === '+',
    );
  if (!ok)
    throw new DeviceError(
      'IOTDR_DEVICE_INVALID_TOPIC',
      `${JSON.stringify(filter)} is not an MQTT topic filter`,
    );
}

/** Whether `topic` matches `filter`; `$` topics match a wildcard only below their first level (§4.7.2). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Largest payload the broker takes by default (docs/broker.md, as AWS IoT); a bigger one would close every session it is sent on. */
export const MAX_PAYLOAD_BYTES = 131_072;

/** The JSON object a publish carries, with `messageId` set; refuses anything that is not a JSON object. */
export function withMessageId(payload: unknown, messageId: string): Buffer {
  let value: unknown = payload;
  if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
    try {
      value = JSON.parse(payload.toString());
    } catch {
      value = undefined;
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new DeviceError(
      'IOTDR_DEVICE_INVALID_PAYLOAD',
      'publish takes a JSON object (or its text): the message id goes into its top-level "messageId"',
    );
  const bytes = Buffer.from(JSON.stringify({ ...(value as Record<string, unknown>), messageId }));
  if (bytes.length > MAX_PAYLOAD_BYTES)
    throw new DeviceError(
      'IOTDR_DEVICE_INVALID_PAYLOAD',
      `the payload is ${bytes.length} bytes; the broker takes at most ${MAX_PAYLOAD_BYTES}`,
    );
  return bytes;
}

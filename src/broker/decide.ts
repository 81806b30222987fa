import { PLATFORM_TOPIC_PREFIX } from '../common/index.js';
import { evaluate, type IotAction, type PolicyContext } from '../registry/index.js';
import type { Identity } from './identity.js';
import type { RefusalReason } from './metrics.js';
import type { ResolvedLimits } from './options.js';
import { type Session, topicProblem } from './session.js';

/** Why something was refused: the metric label and a line for the log. */
export interface Refusal {
  reason: RefusalReason;
  detail: string;
}

/**
 * Why iot:Connect is denied for this identity, if it is. `context` is the connection's, with what
 * its CONNECT asked for (connection-facts.ts, connectContext).
 */
export function connectDenied(identity: Identity, context: PolicyContext): string | undefined {
  if (identity.auth === 'health') return undefined;
  const decision = evaluate(identity.policies, context, 'iot:Connect', `client/${context.clientId}`);
  if (decision.effect === 'allow') return undefined;
  return decision.reason === 'explicit'
    ? `iot:Connect denied by policy ${decision.policy} statement ${decision.statement}`
    : 'iot:Connect not allowed by any attached policy';
}

/**
 * Decides one action with the session's policies (default deny, an explicit Deny wins). The
 * health identity has no policies: it may act only under its topic prefix.
 */
export function refusalOf(
  session: Session,
  action: IotAction,
  resource: string,
  reason: RefusalReason,
  healthPrefix: string,
): Refusal | undefined {
  const identity = session.identity;
  if (identity.auth === 'health') {
    const name = resource.slice(resource.indexOf('/') + 1);
    return name.startsWith(healthPrefix)
      ? undefined
      : { reason, detail: `${action} ${resource}: outside ${healthPrefix}` };
  }
  const decision = evaluate(identity.policies, session.context, action, resource);
  if (decision.effect === 'allow') return undefined;
  const why =
    decision.reason === 'explicit'
      ? `denied by policy ${decision.policy} statement ${decision.statement}`
      : 'not allowed by any policy';
  return { reason, detail: `${action} ${resource}: ${why}` };
}

/** What a device may write under its own `$iotdr/things/<thing>/`: shadow requests, command replies. */
const DEVICE_PLATFORM_TOPIC = /^(?:shadow\/(?:get|update|delete)|commands\/[^/]+\/reply)$/;

/**
 * Under `$iotdr/` a device writes only its own requests to the platform: its shadow's get, update
 * and delete, and its replies to its commands. Everything else there is the platform's word —
 * failover notices every device obeys, commands, shadow replies, health probes — so no policy can
 * let a device publish it, however broad (`iot:*` on `*` included).
 */
export function platformTopicRefusal(session: Session, topic: string): Refusal | undefined {
  if (!topic.startsWith(PLATFORM_TOPIC_PREFIX) || session.identity.auth === 'health') return undefined;
  const thing = session.context.thingName;
  const own = thing === undefined ? undefined : `${PLATFORM_TOPIC_PREFIX}things/${thing}/`;
  if (own !== undefined && topic.startsWith(own) && DEVICE_PLATFORM_TOPIC.test(topic.slice(own.length)))
    return undefined;
  return {
    reason: 'publish_denied',
    detail: `iot:Publish topic/${topic}: a platform topic; a device publishes there only its own shadow requests and command replies`,
  };
}

/**
 * Limits first (size, topic), then the platform's topics, then iot:Publish, then iot:RetainPublish
 * for a retained message.
 */
export function publishRefusal(
  session: Session,
  packet: { topic: string; payload: Buffer | string; retain: boolean },
  limits: ResolvedLimits,
  healthPrefix: string,
): Refusal | undefined {
  const size = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
  if (size > limits.maxPayloadBytes) {
    return {
      reason: 'payload_too_large',
      detail: `payload of ${size} bytes exceeds the limit of ${limits.maxPayloadBytes}`,
    };
  }
  const problem = topicProblem(packet.topic, limits) ?? platformTopicRefusal(session, packet.topic);
  if (problem) return problem;
  const resource = `topic/${packet.topic}`;
  return (
    refusalOf(session, 'iot:Publish', resource, 'publish_denied', healthPrefix) ??
    (packet.retain
      ? refusalOf(session, 'iot:RetainPublish', resource, 'publish_denied', healthPrefix)
      : undefined)
  );
}

export function subscribeRefusal(
  session: Session,
  filter: string,
  limits: ResolvedLimits,
  healthPrefix: string,
): Refusal | undefined {
  return (
    topicProblem(filter, limits) ??
    refusalOf(session, 'iot:Subscribe', `topicfilter/${filter}`, 'subscribe_denied', healthPrefix)
  );
}

/** The top-level string `messageId` of a JSON object payload, 1..128 characters. */
export function messageIdOf(payload: Buffer): string | undefined {
  // Only a JSON object can carry one: skip parsing anything else.
  let i = 0;
  while (
    i < payload.length &&
    (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)
  )
    i++;
  if (payload[i] !== 0x7b) return undefined;
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
    const id = (parsed as Record<string, unknown>).messageId;
    return typeof id === 'string' && id.length >= 1 && id.length <= 128 ? id : undefined;
  } catch {
    return undefined;
  }
}

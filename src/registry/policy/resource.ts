/**
 * Policy resources: `*`, an ARN (`arn:aws:iot:REGION:ACCOUNT:topic/…`), or iotdr's short forms
 * `client/…`, `topic/…`, `topicfilter/…`.
 *
 * An ARN's partition, region and account are not compared: an iotdr fleet is one namespace that
 * fails over between regions, and a policy written for `arn:aws:iot:us-east-1:…` must keep
 * granting after the fleet moves to another region. An ARN of another AWS IoT resource type
 * (`thing/…`, `rolealias/…`, `job/…`) or of another service is accepted and never matches an
 * action the broker asks about, as in AWS, where such a resource never names a client or topic.
 */
import { globMatch, type Token, tokenize } from './match.js';

export type ResourceType = 'client' | 'topic' | 'topicfilter';

export interface ParsedResource {
  /**
   * The resource type the pattern names; '*' when a wildcard or variable comes before its first
   * '/', so that it may match any type ('*' itself, `arn:aws:iot:*:*:t*`); 'other' for what the
   * broker never asks about.
   */
  type: ResourceType | '*' | 'other';
  /** For a type: the pattern after `type/`. For '*': the pattern over the whole `type/name`. */
  tokens: Token[];
  /** Short form: the ARN prefix removed. */
  short: string;
}

export type ResourceResult = { ok: true; resource: ParsedResource } | { ok: false; message: string };

const TYPES: readonly ResourceType[] = ['client', 'topic', 'topicfilter'];

const VALID_RESOURCES =
  "valid resources are '*', an ARN such as arn:aws:iot:REGION:ACCOUNT:topic/TOPIC, " +
  'or the short forms client/CLIENT_ID, topic/TOPIC and topicfilter/TOPIC_FILTER';

/**
 * Splits an ARN into its service and resource (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`).
 * Each part may hold wildcards, as in IAM.
 */
export function splitArn(raw: string): { service: string; resource: string } | undefined {
  if (!raw.startsWith('arn:')) return undefined;
  let rest = raw;
  const parts: string[] = [];
  for (let i = 0; i < 5; i++) {
    const colon = rest.indexOf(':');
    if (colon < 0) return undefined;
    parts.push(rest.slice(0, colon));
    rest = rest.slice(colon + 1);
  }
  return { service: parts[2] ?? '', resource: rest };
}

function typed(
  raw: string,
  type: ResourceType,
  pattern: string,
  short: string,
  variables: boolean,
): ResourceResult {
  if (pattern === '')
    return { ok: false, message: `'${raw}' names no ${type}: write ${type}/NAME or ${type}/*` };
  const tokens = tokenize(pattern, variables, true);
  if (!tokens.ok) return tokens;
  return { ok: true, resource: { type, tokens: tokens.tokens, short } };
}

/** The resource part of an AWS IoT ARN (`topic/x`, `thing/y`, `*`, `t*`). */
function iotResource(raw: string, short: string, variables: boolean): ResourceResult {
  if (short === '') return { ok: false, message: `'${raw}' names no resource after its account` };
  const slash = short.indexOf('/');
  const head = slash < 0 ? short : short.slice(0, slash);
  if (/[*?]|\$\{/.test(head)) {
    // A wildcard in the type: the pattern is matched against the whole `type/name`.
    const tokens = tokenize(short, variables, true);
    if (!tokens.ok) return tokens;
    return { ok: true, resource: { type: '*', tokens: tokens.tokens, short } };
  }
  const type = TYPES.find((t) => t === head);
  if (type === undefined || slash < 0) return { ok: true, resource: { type: 'other', tokens: [], short } };
  return typed(raw, type, short.slice(slash + 1), short, variables);
}

/**
 * Parses and validates one resource as written in a policy. `variables` is false for a
 * '2008-10-17' document, where `${…}` is plain text.
 */
export function parseResource(raw: string, variables = true): ResourceResult {
  if (raw === '*') return { ok: true, resource: { type: '*', tokens: [{ t: 'star' }], short: raw } };
  if (raw.startsWith('arn:')) {
    const arn = splitArn(raw);
    if (arn === undefined) {
      return { ok: false, message: `'${raw}' is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)` };
    }
    if (!globMatch(arn.service.toLowerCase(), 'iot'))
      return { ok: true, resource: { type: 'other', tokens: [], short: raw } };
    return iotResource(raw, arn.resource, variables);
  }
  // The short forms are iotdr's own: they name a type the broker evaluates, spelled exactly.
  const slash = raw.indexOf('/');
  const type = TYPES.find((t) => t === raw.slice(0, slash));
  if (slash < 0 || type === undefined) {
    const arn = slash > 0 ? ` (another type is written as an ARN: arn:aws:iot:REGION:ACCOUNT:${raw})` : '';
    return { ok: false, message: `'${raw}' is not a resource iotdr understands; ${VALID_RESOURCES}${arn}` };
  }
  return typed(raw, type, raw.slice(slash + 1), raw, variables);
}

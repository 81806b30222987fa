/**
 * Policy resources: `*`, `client/…`, `topic/…`, `topicfilter/…`, or the same as an AWS IoT ARN.
 *
 * An ARN's partition, region and account are not compared: an iotdr fleet is one namespace that
 * fails over between regions, and a policy written for `arn:aws:iot:us-east-1:…` must keep
 * granting after the fleet moves to another region.
 */
import type { Token } from './match.js';
import { parseVariable } from './variables.js';

export type ResourceType = 'client' | 'topic' | 'topicfilter';

export interface ParsedResource {
  /** '*' for a resource that matches every type. */
  type: ResourceType | '*';
  /** The pattern after `type/`; a lone star token for '*'. */
  tokens: Token[];
  /** Short form: the ARN prefix removed. */
  short: string;
}

export type ResourceResult = { ok: true; resource: ParsedResource } | { ok: false; message: string };

const TYPES: readonly ResourceType[] = ['client', 'topic', 'topicfilter'];
const PARTITION = /^(aws(-[a-z0-9-]+)?|\*)$/;

const VALID_RESOURCES =
  "valid resources are '*', client/CLIENT_ID, topic/TOPIC, topicfilter/TOPIC_FILTER, " +
  'or the same as arn:aws:iot:REGION:ACCOUNT:client/…';

/** Splits off an ARN prefix; returns the short form or an error message. */
function shortForm(raw: string): { ok: true; short: string } | { ok: false; message: string } {
  if (!raw.startsWith('arn:')) return { ok: true, short: raw };
  const parts: string[] = [];
  let rest = raw;
  for (let i = 0; i < 5; i++) {
    const colon = rest.indexOf(':');
    if (colon < 0) {
      return { ok: false, message: `'${raw}' is not an AWS IoT ARN (arn:aws:iot:REGION:ACCOUNT:RESOURCE)` };
    }
    parts.push(rest.slice(0, colon));
    rest = rest.slice(colon + 1);
  }
  const [, partition = '', service = ''] = parts;
  if (!PARTITION.test(partition)) {
    return {
      ok: false,
      message: `ARN partition '${partition}' is not valid: use aws, aws-cn, aws-us-gov or *`,
    };
  }
  if (service !== 'iot') {
    return {
      ok: false,
      message: `ARN service '${service}' is not iot: an IoT policy names arn:aws:iot:… resources`,
    };
  }
  return { ok: true, short: rest };
}

function tokenize(
  pattern: string,
  allowVariables: boolean,
): { ok: true; tokens: Token[] } | { ok: false; message: string } {
  const tokens: Token[] = [];
  let literal = '';
  const flush = (): void => {
    if (literal !== '') tokens.push({ t: 'lit', text: literal });
    literal = '';
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' || c === '?') {
      flush();
      tokens.push(c === '*' ? { t: 'star' } : { t: 'one' });
    } else if (c === '$' && pattern[i + 1] === '{') {
      if (!allowVariables) {
        return {
          ok: false,
          message:
            "policy variables need Version '2012-10-17' (AWS reads them as plain text in '2008-10-17')",
        };
      }
      const close = pattern.indexOf('}', i + 2);
      if (close < 0) return { ok: false, message: `'\${' at character ${i} is not closed by '}'` };
      const parsed = parseVariable(pattern.slice(i + 2, close));
      if (!parsed.ok) return parsed;
      if ('literal' in parsed) {
        literal += parsed.literal;
      } else {
        flush();
        tokens.push({ t: 'var', variable: parsed.variable });
      }
      i = close;
    } else {
      literal += c;
    }
  }
  flush();
  return { ok: true, tokens };
}

/** Parses and validates one resource as written in a policy. */
export function parseResource(raw: string, allowVariables = true): ResourceResult {
  const form = shortForm(raw);
  if (!form.ok) return form;
  const short = form.short;
  if (short === '*') return { ok: true, resource: { type: '*', tokens: [{ t: 'star' }], short } };
  const slash = short.indexOf('/');
  const type = TYPES.find((t) => t === short.slice(0, slash));
  if (slash < 0 || type === undefined) {
    return { ok: false, message: `'${raw}' is not a resource iotdr understands; ${VALID_RESOURCES}` };
  }
  const pattern = short.slice(slash + 1);
  if (pattern === '')
    return { ok: false, message: `'${raw}' names no ${type}: write ${type}/NAME or ${type}/*` };
  const tokens = tokenize(pattern, allowVariables);
  if (!tokens.ok) return tokens;
  return { ok: true, resource: { type, tokens: tokens.tokens, short } };
}

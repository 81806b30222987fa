import type { Agent } from 'node:https';
import { z } from 'zod';
import { type Clock, REGION_NAME_PATTERN, systemClock } from '../../common/index.js';
import { type RawAnswer, sendRequest } from '../../http/index.js';
import { DEFAULT_EXPECTED_STATUS, HTTP_CHECK_COMPONENTS } from '../config.js';
import { InvalidCheckpointError } from '../errors.js';
import type { Checkpoint, ProbeContext, ProbeResult } from '../types.js';

/** Most of a body read for bodyMatch, in bytes; a health page is small. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface HttpCheckpointOptions {
  /** Checkpoint name, `^[a-z][a-z0-9-]{0,62}$`, unique. */
  name: string;
  component: (typeof HTTP_CHECK_COMPONENTS)[number];
  /** http(s) URL, without credentials in it. */
  url: string;
  /** Status the service must answer. Default 200. Redirects are not followed. */
  expectedStatus?: number;
  /** A regular expression (JavaScript syntax) the first 64 KiB of the body must match. */
  bodyMatch?: string;
  /** In ms; default the service's timeout. */
  timeoutMs?: number;
  /** Default: whether the component is in the service's critical list. */
  critical?: boolean;
  clock?: Clock;
  /**
   * The agent to call through: a site's (mutual TLS, for a service of the platform itself such as
   * analytics), or one trusting the platform's CA beside the system's (the region's configured
   * checks); without it the URL is fetched as any client would, with the system's CAs.
   */
  agent?: Agent;
}

const optionsSchema = z.object({
  name: z.string().regex(REGION_NAME_PATTERN, 'a lowercase letter, then lowercase letters, digits or -'),
  component: z.enum(HTTP_CHECK_COMPONENTS),
  url: z.string().refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password;
    } catch {
      return false;
    }
  }, 'an http or https URL without credentials'),
  expectedStatus: z.number().int().min(100).max(599).default(DEFAULT_EXPECTED_STATUS),
  bodyMatch: z
    .string()
    .refine((value) => {
      try {
        new RegExp(value);
        return true;
      } catch {
        return false;
      }
    }, 'a valid JavaScript regular expression')
    .optional(),
  timeoutMs: z.number().int().min(1).max(600_000).optional(),
  critical: z.boolean().optional(),
});

/**
 * `<component>:responseTime` for a service of the reference design (application services,
 * command and control, analytics): a GET of its URL must answer the expected status and, when
 * configured, a body matching the expression. observedValue: ms to the status (and body).
 */
export function httpCheckpoint(options: HttpCheckpointOptions): Checkpoint {
  const { clock: given, agent, ...rest } = options;
  const parsed = optionsSchema.safeParse(rest);
  if (!parsed.success)
    throw new InvalidCheckpointError(`HTTP checkpoint ${options.name}`, parsed.error.issues);
  const o = parsed.data;
  const clock = given ?? systemClock;
  const pattern = o.bodyMatch === undefined ? undefined : new RegExp(o.bodyMatch);
  return {
    name: o.name,
    component: o.component,
    measurement: 'responseTime',
    componentType: 'system',
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    ...(o.critical === undefined ? {} : { critical: o.critical }),
    probe: (context) =>
      agent === undefined
        ? get(o.url, o.expectedStatus, pattern, context, clock)
        : getThrough(agent, o.url, o.expectedStatus, pattern, context, clock),
  };
}

async function get(
  url: string,
  expectedStatus: number,
  pattern: RegExp | undefined,
  context: ProbeContext,
  clock: Clock,
): Promise<ProbeResult> {
  const started = clock.now();
  context.step('requesting');
  let res: Response;
  try {
    res = await fetch(url, {
      signal: context.signal,
      redirect: 'manual',
      // A cache between here and the service must not answer for it.
      headers: { accept: '*/*', 'cache-control': 'no-cache', 'user-agent': 'iotdr-health' },
    });
  } catch (error) {
    return fail(started, clock, `request failed: ${reason(error)}`);
  }
  if (res.status !== expectedStatus) {
    await res.body?.cancel().catch(() => {});
    return fail(started, clock, `answered ${res.status}, expected ${expectedStatus}`);
  }
  if (pattern) {
    context.step('reading the body');
    const body = await readBody(res);
    if (!pattern.test(body)) return fail(started, clock, 'the body does not match bodyMatch');
  } else {
    await res.body?.cancel().catch(() => {});
  }
  return { status: 'pass', observedValue: Math.max(0, clock.now() - started), observedUnit: 'ms' };
}

/** The same check through an agent (node's client: fetch takes no agent). */
async function getThrough(
  agent: Agent,
  url: string,
  expectedStatus: number,
  pattern: RegExp | undefined,
  context: ProbeContext,
  clock: Clock,
): Promise<ProbeResult> {
  const started = clock.now();
  context.step('requesting');
  let res: RawAnswer;
  try {
    res = await sendRequest(url, {
      method: 'GET',
      headers: { accept: '*/*', 'cache-control': 'no-cache', 'user-agent': 'iotdr-health' },
      trust: agent,
      signal: context.signal,
    });
  } catch (error) {
    return fail(started, clock, `request failed: ${reason(error)}`);
  }
  if (res.status !== expectedStatus)
    return fail(started, clock, `answered ${res.status}, expected ${expectedStatus}`);
  if (pattern && !pattern.test(res.text.slice(0, MAX_BODY_BYTES)))
    return fail(started, clock, 'the body does not match bodyMatch');
  return { status: 'pass', observedValue: Math.max(0, clock.now() - started), observedUnit: 'ms' };
}

function fail(started: number, clock: Clock, output: string): ProbeResult {
  return { status: 'fail', observedValue: Math.max(0, clock.now() - started), observedUnit: 'ms', output };
}

/** The first MAX_BODY_BYTES of the body as text; the rest is not read. */
async function readBody(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_BODY_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8');
}

/** A fetch failure in a few words: its cause's code (ECONNREFUSED, …), without addresses. */
function reason(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  if (error instanceof Error && error.name === 'AbortError') return 'aborted';
  return error instanceof Error ? error.message : String(error);
}

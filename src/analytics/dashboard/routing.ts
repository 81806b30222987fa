import { z } from 'zod';
import { formatPath, REGION_NAME_PATTERN, ValidationError } from '../../common/index.js';
import { type ControlClient, ControlUnreachableError } from '../../failover/index.js';
import { controlTimeout, controlUnreachable } from './errors.js';

const reason = z
  .string({ error: 'expected a reason (text)' })
  .trim()
  .min(1, { error: 'say why: the reason is recorded in the decision log' })
  .max(1000, { error: 'at most 1000 characters' });

/** Body of POST /v1/routing/failover: the region to pin and why. */
export function failoverBody(regions: readonly string[]) {
  return z
    .object({
      to: z
        .string({ error: 'expected a region name' })
        .regex(REGION_NAME_PATTERN, { error: 'expected a region name' })
        .refine((to) => regions.includes(to), { error: `expected one of ${regions.join(', ')}` }),
      reason,
    })
    .strict();
}

/** Body of POST /v1/routing/failback. */
export const failbackBody = z.object({ reason }).strict();

/** Parses a routing body or throws a ValidationError naming every bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? undefined);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((i) => ({
    path: formatPath(['body', ...i.path]),
    message: i.message,
  }));
  throw new ValidationError(
    `invalid body: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    errors,
  );
}

export interface ControlAnswer {
  status: number;
  contentType: string;
  body: string;
}

/**
 * Forwards a routing control to the control API with the operator's own Authorization header, so
 * control decides who may switch (admin role) and records that token's name; answers control's
 * status and body unchanged. A node that is down, gives no answer in time or answers 502 or 503 is
 * passed over for the next. Throws a DashboardError only when no node gave another answer.
 */
export async function forwardRouting(
  control: ControlClient,
  path: string,
  body: unknown,
  authorization: string | undefined,
  timeoutMs: number,
): Promise<ControlAnswer> {
  // The operator's token speaks, not analytics: no site certificate goes with it, only the CA to
  // verify control by.
  try {
    const res = await control.send({
      method: 'POST',
      path,
      headers: {
        'content-type': 'application/json',
        ...(authorization === undefined ? {} : { authorization }),
      },
      body: JSON.stringify(body),
      timeoutMs,
    });
    return { status: res.status, contentType: res.contentType ?? 'application/json', body: res.text };
  } catch (error) {
    if (!(error instanceof ControlUnreachableError)) throw error;
    throw error.someTimedOut ? controlTimeout(error, timeoutMs) : controlUnreachable(error);
  }
}

import { z } from 'zod';
import { formatPath, type IotdrError, REGION_NAME_PATTERN, ValidationError } from '../../common/index.js';
import { sendRequest } from '../../http/index.js';
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
 * status and body unchanged. Throws a DashboardError only when control gave no answer.
 */
export async function forwardRouting(
  url: string,
  body: unknown,
  authorization: string | undefined,
  timeoutMs: number,
  caPem?: string,
): Promise<ControlAnswer> {
  // The operator's token speaks, not analytics: no site certificate goes with it, only the CA to
  // verify control by.
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await sendRequest(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(authorization === undefined ? {} : { authorization }),
      },
      body: JSON.stringify(body),
      ...(caPem === undefined ? {} : { trust: caPem }),
      signal,
    });
    return { status: res.status, contentType: res.contentType ?? 'application/json', body: res.text };
  } catch (error) {
    throw signal.aborted ? controlTimeout(url, timeoutMs) : failed(url, error, timeoutMs);
  }
}

function failed(url: string, error: unknown, timeoutMs: number): IotdrError {
  return error instanceof Error && error.name === 'TimeoutError'
    ? controlTimeout(url, timeoutMs)
    : controlUnreachable(url, (error as { cause?: unknown }).cause ?? error);
}

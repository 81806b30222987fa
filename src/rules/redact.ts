import type { FieldIssue } from '../common/index.js';
import type { RuleAction } from './model.js';

/**
 * HTTP action headers carry the receiver's credentials (`authorization`, `x-api-key`), so the
 * rules API never answers with their values, whatever the caller's role: a header is listed with
 * this in place of its value. Replication still carries them (a peer region must send them too).
 */
export const REDACTED = '***';

export function redactActions(actions: readonly RuleAction[]): RuleAction[] {
  return actions.map((action) =>
    action.type === 'http' && action.headers
      ? {
          ...action,
          headers: Object.fromEntries(Object.keys(action.headers).map((name) => [name, REDACTED])),
        }
      : action,
  );
}

function origin(url: string): string | undefined {
  return URL.canParse(url) ? new URL(url).origin : undefined;
}

/**
 * A rule read from the API and sent back carries `***` for each header: that keeps the stored
 * value. It is kept only from the action at the same place in the stored rule, posting to the same
 * origin: a secret goes nowhere it did not already go, so an operator cannot send it to a URL of
 * their own by changing the URL and keeping the placeholder. Anything else is an issue to report.
 */
export function keepRedactedHeaders(
  actions: readonly RuleAction[],
  stored: readonly RuleAction[] | undefined,
): { actions: RuleAction[]; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  const resolved = actions.map((action, i) => {
    if (action.type !== 'http' || !action.headers) return action;
    const before = stored?.[i];
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(action.headers)) {
      if (value !== REDACTED) {
        headers[name] = value;
        continue;
      }
      const previous = before?.type === 'http' ? before : undefined;
      const kept = previous?.headers?.[name];
      if (previous === undefined || kept === undefined) {
        issues.push({
          path: `body.actions.${i}.headers.${name}`,
          message: `'${REDACTED}' keeps a stored value, and the stored rule has no header ${name} on action ${i}`,
        });
      } else if (origin(previous.url) !== origin(action.url)) {
        issues.push({
          path: `body.actions.${i}.headers.${name}`,
          message: `'${REDACTED}' keeps a stored value only for the same origin (${origin(previous.url)}); send the value for ${origin(action.url)}`,
        });
      } else headers[name] = kept;
    }
    return { ...action, headers };
  });
  return { actions: resolved, issues };
}

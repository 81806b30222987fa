/**
 * Keeps the listed fields of a JSON object, each a top-level name or a dotted path ('a.b.c'),
 * with its nesting: select ['t', 'pos.lat'] of {t:1, pos:{lat:2, lon:3}, x:4} is
 * {t:1, pos:{lat:2}}. A field the payload lacks is left out.
 */
export function selectFields(
  value: Record<string, unknown>,
  paths: readonly string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const path of paths) {
    const parts = path.split('.');
    let source: unknown = value;
    for (const part of parts) {
      source = isObject(source) && Object.hasOwn(source, part) ? source[part] : undefined;
      if (source === undefined) break;
    }
    if (source === undefined) continue;
    let target = out;
    for (const part of parts.slice(0, -1)) {
      const next = Object.hasOwn(target, part) ? target[part] : undefined;
      if (!isObject(next)) define(target, part, {});
      target = target[part] as Record<string, unknown>;
    }
    define(target, parts[parts.length - 1] as string, source);
  }
  return out;
}

/** An own property even for a name like '__proto__' (which plain assignment would not make). */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

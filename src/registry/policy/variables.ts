// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
/**
 * Policy variables (AWS IoT Core "basic" and "thing" policy variables) and the connection context
 * they resolve against.
 */

/**
 * Who is asking. The thing variables resolve only when `thingName` is set, i.e. when the broker
 * found a thing attached to the client's certificate: AWS leaves them unresolved otherwise, and
 * an unresolved variable makes its resource match nothing.
 */
export interface PolicyContext {
  /** MQTT client identifier of the connection (`${iot:ClientId}`). */
  clientId: string;
  /** Thing attached to the client's certificate (`${iot:Connection.Thing.ThingName}`). */
  thingName?: string;
  /** That thing's type, when it has one (`${iot:Connection.Thing.ThingTypeName}`). */
  thingTypeName?: string;
  /** That thing's attributes (`${iot:Connection.Thing.Attributes[NAME]}`). */
  thingAttributes?: Readonly<Record<string, string>>;
}

export type PolicyVariable =
  | { kind: 'clientId'; name: string }
  | { kind: 'thingName'; name: string }
  | { kind: 'thingTypeName'; name: string }
  | { kind: 'isAttached'; name: string }
  | { kind: 'attribute'; name: string; attribute: string };

const SIMPLE: Readonly<Record<string, Exclude<PolicyVariable['kind'], 'attribute'>>> = {
  'iot:ClientId': 'clientId',
  'iot:Connection.Thing.ThingName': 'thingName',
  'iot:Connection.Thing.ThingTypeName': 'thingTypeName',
  'iot:Connection.Thing.IsAttached': 'isAttached',
};

/** IAM's escapes for characters that are otherwise special in a resource. */
const ESCAPES: Readonly<Record<string, string>> = { '*': '*', '?': '?', $: '$' };

const ATTRIBUTE = /^iot:Connection\.Thing\.Attributes\[(.*)\]$/s;
/** AWS IoT's pattern for a thing attribute name. */
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#-]{1,128}$/;

export const KNOWN_VARIABLES_HINT =
  'iotdr resolves ${iot:ClientId}, ${iot:Connection.Thing.ThingName}, ${iot:Connection.Thing.ThingTypeName}, ' +
  '${iot:Connection.Thing.Attributes[NAME]} and ${iot:Connection.Thing.IsAttached}, and the escapes ${*}, ${?} and ${$}';

export type ParsedVariable =
  | { ok: true; variable: PolicyVariable }
  | { ok: true; literal: string }
  | { ok: false; message: string };

/** Parses the text between `${` and `}`. */
export function parseVariable(name: string): ParsedVariable {
  const escaped = Object.hasOwn(ESCAPES, name) ? ESCAPES[name] : undefined;
  if (escaped !== undefined) return { ok: true, literal: escaped };
  const kind = Object.hasOwn(SIMPLE, name) ? SIMPLE[name] : undefined;
  if (kind !== undefined) return { ok: true, variable: { kind, name } };
  const attr = ATTRIBUTE.exec(name);
  if (attr !== null) {
    const attribute = attr[1] ?? '';
    if (!ATTRIBUTE_NAME.test(attribute)) {
      return {
        ok: false,
        message: `thing attribute name '${attribute}' in \${${name}} is not valid: 1-128 characters of a-z, A-Z, 0-9 and _.,@/:#-`,
      };
    }
    return { ok: true, variable: { kind: 'attribute', name, attribute } };
  }
  return { ok: false, message: `unknown policy variable \${${name}}; ${KNOWN_VARIABLES_HINT}` };
}

/**
 * The value of a variable for a connection, or undefined when it has none. `IsAttached` is
 * 'true' or 'false' and always resolves.
 */
export function resolveVariable(variable: PolicyVariable, context: PolicyContext): string | undefined {
  switch (variable.kind) {
    case 'clientId':
      return context.clientId;
    case 'thingName':
      return context.thingName;
    case 'isAttached':
      return context.thingName === undefined ? 'false' : 'true';
    case 'thingTypeName':
      return context.thingName === undefined ? undefined : context.thingTypeName;
    case 'attribute': {
      const attributes = context.thingAttributes;
      if (context.thingName === undefined || attributes === undefined) return undefined;
      // Own properties only: an attribute named 'constructor' must not find Object.prototype's.
      if (!Object.hasOwn(attributes, variable.attribute)) return undefined;
      const value = attributes[variable.attribute];
      return typeof value === 'string' ? value : undefined;
    }
  }
}

// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
/**
 * What AWS IoT Core knows about a connection, by the names its policies use: policy variables
 * (`${iot:ClientId}` in a Resource or a condition value) and condition keys (`iot:ClientId` in a
 * Condition) are the same names resolved the same way. Names compare case-insensitively, as IAM's
 * condition keys do; a thing attribute's name inside `[…]` keeps its case.
 */

/**
 * The client certificate's fields by AWS's name after `iot:Certificate.` (`Subject.CommonName`,
 * `Issuer.AlternativeName.DNSName`, `SerialNumber`), each with its values in certificate order
 * (at most MAX_CERTIFICATE_VALUES). A field the certificate lacks is absent.
 */
export type CertificateFields = Readonly<Record<string, readonly string[]>>;

/**
 * Who is asking and over what connection. The thing variables resolve only when `thingName` is
 * set, i.e. when the broker resolved a thing for the connection: AWS leaves them unresolved
 * otherwise, and an unresolved variable matches nothing.
 */
export interface PolicyContext {
  /** MQTT client identifier of the connection (`iot:ClientId`). */
  clientId: string;
  /** Thing resolved for the connection (`iot:Connection.Thing.ThingName`). */
  thingName?: string;
  /** That thing's type, when it has one (`iot:Connection.Thing.ThingTypeName`). */
  thingTypeName?: string;
  /** That thing's attributes (`iot:Connection.Thing.Attributes[NAME]`). */
  thingAttributes?: Readonly<Record<string, string>>;
  /** The client's IP address (`aws:SourceIp`), IPv4 in dotted form even on a dual-stack socket. */
  sourceIp?: string;
  /** The server name the client asked for in TLS SNI, else the broker's MQTT name (`iot:DomainName`). */
  domainName?: string;
  /** SHA-256 hex of the client certificate (`iot:CertificateId`; mutual TLS only). */
  certificateId?: string;
  /** The client certificate's fields (`iot:Certificate.*`; mutual TLS only). */
  certificate?: CertificateFields;
  /** `PersistentConnect` and/or `LastWill` (`iot:ConnectAttributes`); set for iot:Connect only. */
  connectAttributes?: readonly string[];
  /** The CONNECT's will topic as an ARN (`iot:LastWillTopic`); set for iot:Connect only. */
  lastWillTopic?: string;
  /** Wall-clock ms for `aws:CurrentTime` and `aws:EpochTime`; without it they are absent. */
  now?: () => number;
}

/** Distinguished-name attributes AWS IoT names under `iot:Certificate.Subject.` and `.Issuer.`, by OID. */
export const CERTIFICATE_NAME_ATTRIBUTES: Readonly<Record<string, string>> = Object.freeze({
  DistinguishedNameQualifier: '2.5.4.46',
  Country: '2.5.4.6',
  Organization: '2.5.4.10',
  OrganizationalUnit: '2.5.4.11',
  State: '2.5.4.8',
  CommonName: '2.5.4.3',
  SerialNumber: '2.5.4.5',
  Title: '2.5.4.12',
  Surname: '2.5.4.4',
  GivenName: '2.5.4.42',
  Initials: '2.5.4.43',
  Pseudonym: '2.5.4.65',
  GenerationQualifier: '2.5.4.44',
});

/** Alternative-name kinds AWS IoT names under `…Subject.AlternativeName.` and `…Issuer.AlternativeName.`. */
export const CERTIFICATE_ALTERNATIVE_NAMES: readonly string[] = Object.freeze([
  'RFC822Name',
  'DNSName',
  'DirectoryName',
  'UniformResourceIdentifier',
  'IPAddress',
]);

/** AWS IoT keeps the first five values of a multi-valued certificate attribute. */
export const MAX_CERTIFICATE_VALUES = 5;
/** A longer certificate value is not substituted for its variable (AWS IoT's limit). */
const MAX_CERTIFICATE_VALUE_CHARS = 1024;
/** A certificate value containing one of these is not substituted for its variable (AWS IoT's rule). */
const CERTIFICATE_WILDCARDS = /[*$+?#]/;

export type PolicyVariable =
  | {
      kind:
        | 'clientId'
        | 'thingName'
        | 'thingTypeName'
        | 'isAttached'
        | 'sourceIp'
        | 'domainName'
        | 'certificateId'
        | 'lastWillTopic'
        | 'currentTime'
        | 'epochTime'
        | 'availableKeys'
        | 'connectAttributes';
      name: string;
    }
  | { kind: 'attribute'; name: string; attribute: string }
  /** One value of a certificate field: `index` 0 for the plain name, N for `NAME.N`. */
  | { kind: 'certificate'; name: string; field: string; index: number }
  /** Every value of a certificate field (`NAME.List`). */
  | { kind: 'certificateList'; name: string; field: string };

type SimpleKind = Exclude<PolicyVariable['kind'], 'attribute' | 'certificate' | 'certificateList'>;

/** Keys that hold a list of values: they need ForAnyValue:/ForAllValues: and are no variables. */
const MULTI_VALUED: ReadonlySet<PolicyVariable['kind']> = new Set([
  'availableKeys',
  'connectAttributes',
  'certificateList',
]);

const SIMPLE_NAMES: ReadonlyArray<readonly [string, SimpleKind]> = [
  ['iot:ClientId', 'clientId'],
  ['iot:Connection.Thing.ThingName', 'thingName'],
  ['iot:Connection.Thing.ThingTypeName', 'thingTypeName'],
  ['iot:Connection.Thing.IsAttached', 'isAttached'],
  ['aws:SourceIp', 'sourceIp'],
  ['iot:DomainName', 'domainName'],
  ['iot:CertificateId', 'certificateId'],
  ['iot:Certificate.AvailableKeys', 'availableKeys'],
  ['iot:ConnectAttributes', 'connectAttributes'],
  ['iot:LastWillTopic', 'lastWillTopic'],
  ['aws:CurrentTime', 'currentTime'],
  ['aws:EpochTime', 'epochTime'],
];
const SIMPLE = new Map(SIMPLE_NAMES.map(([name, kind]) => [name.toLowerCase(), { name, kind }]));

/** Canonical certificate field names (`Subject.CommonName`, …, `SerialNumber`) by lower case. */
const CERTIFICATE_FIELD_NAMES = new Map<string, string>();
for (const side of ['Subject', 'Issuer']) {
  for (const attribute of Object.keys(CERTIFICATE_NAME_ATTRIBUTES)) {
    CERTIFICATE_FIELD_NAMES.set(`${side}.${attribute}`.toLowerCase(), `${side}.${attribute}`);
  }
  for (const kind of CERTIFICATE_ALTERNATIVE_NAMES) {
    const field = `${side}.AlternativeName.${kind}`;
    CERTIFICATE_FIELD_NAMES.set(field.toLowerCase(), field);
  }
}
CERTIFICATE_FIELD_NAMES.set('serialnumber', 'SerialNumber');

/** Every certificate field name, canonical (`Subject.CommonName`, …, `SerialNumber`). */
export const CERTIFICATE_FIELDS: readonly string[] = Object.freeze([...CERTIFICATE_FIELD_NAMES.values()]);

/** IAM's escapes for characters that are otherwise special in a resource. */
const ESCAPES: ReadonlyMap<string, string> = new Map([
  ['*', '*'],
  ['?', '?'],
  ['$', '$'],
]);

const ATTRIBUTE = /^iot:Connection\.Thing\.Attributes\[(.*)\]$/is;
/** AWS IoT's pattern for a thing attribute name. */
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#-]{1,128}$/;
const CERTIFICATE = /^iot:Certificate\.(.+?)(?:\.(List|\d+))?$/is;

export const KNOWN_VARIABLES_HINT =
  'known names are iot:ClientId, iot:Connection.Thing.ThingName, iot:Connection.Thing.ThingTypeName, ' +
  'iot:Connection.Thing.Attributes[NAME], iot:Connection.Thing.IsAttached, aws:SourceIp, iot:DomainName, ' +
  'iot:CertificateId, iot:Certificate.Subject.ATTRIBUTE, iot:Certificate.Issuer.ATTRIBUTE, ' +
  'iot:Certificate.Subject.AlternativeName.KIND, iot:Certificate.Issuer.AlternativeName.KIND, ' +
  'iot:Certificate.SerialNumber, iot:Certificate.AvailableKeys, iot:ConnectAttributes, iot:LastWillTopic, ' +
  'aws:CurrentTime and aws:EpochTime';

export type ParsedKey = { ok: true; key: PolicyVariable; multi: boolean } | { ok: false; message: string };

function certificateKey(name: string, rest: string, suffix: string | undefined): ParsedKey {
  const field = CERTIFICATE_FIELD_NAMES.get(rest.toLowerCase());
  if (field === undefined) {
    return {
      ok: false,
      message:
        `unknown certificate key '${name}': AWS IoT names iot:Certificate.Subject.ATTRIBUTE, ` +
        'iot:Certificate.Issuer.ATTRIBUTE, iot:Certificate.Subject.AlternativeName.KIND, ' +
        'iot:Certificate.Issuer.AlternativeName.KIND, iot:Certificate.SerialNumber and iot:Certificate.AvailableKeys, ' +
        `ATTRIBUTE being one of ${Object.keys(CERTIFICATE_NAME_ATTRIBUTES).join(', ')} and KIND one of ` +
        `${CERTIFICATE_ALTERNATIVE_NAMES.join(', ')}; a '.N' or '.List' suffix picks values`,
    };
  }
  if (field === 'SerialNumber' && suffix !== undefined) {
    return { ok: false, message: `'${name}': a certificate has one serial number, without '.N' or '.List'` };
  }
  if (suffix?.toLowerCase() === 'list')
    return { ok: true, key: { kind: 'certificateList', name, field }, multi: true };
  const index = suffix === undefined ? 0 : Number(suffix);
  if (index >= MAX_CERTIFICATE_VALUES) {
    return {
      ok: false,
      message: `'${name}' asks for value ${index}: AWS IoT keeps the first ${MAX_CERTIFICATE_VALUES} values (0-${MAX_CERTIFICATE_VALUES - 1})`,
    };
  }
  return { ok: true, key: { kind: 'certificate', name, field, index }, multi: false };
}

/** Parses a condition key or variable name (`iot:ClientId`, `iot:Certificate.Subject.Country.List`, …). */
export function parseKey(name: string): ParsedKey {
  const simple = SIMPLE.get(name.toLowerCase());
  if (simple !== undefined) {
    return { ok: true, key: { kind: simple.kind, name }, multi: MULTI_VALUED.has(simple.kind) };
  }
  const attr = ATTRIBUTE.exec(name);
  if (attr !== null) {
    const attribute = attr[1] ?? '';
    if (!ATTRIBUTE_NAME.test(attribute)) {
      return {
        ok: false,
        message: `thing attribute name '${attribute}' in '${name}' is not valid: 1-128 characters of a-z, A-Z, 0-9 and _.,@/:#-`,
      };
    }
    return { ok: true, key: { kind: 'attribute', name, attribute }, multi: false };
  }
  const cert = CERTIFICATE.exec(name);
  if (cert !== null) return certificateKey(name, cert[1] ?? '', cert[2]);
  return { ok: false, message: `unknown key '${name}'; ${KNOWN_VARIABLES_HINT}` };
}

export type ParsedVariable =
  | { ok: true; variable: PolicyVariable }
  | { ok: true; literal: string }
  | { ok: false; message: string };

/** Parses the text between `${` and `}`. */
export function parseVariable(name: string): ParsedVariable {
  const escaped = ESCAPES.get(name);
  if (escaped !== undefined) return { ok: true, literal: escaped };
  const parsed = parseKey(name);
  if (!parsed.ok) {
    return {
      ok: false,
      message: `unknown policy variable \${${name}}: ${parsed.message}; or the escapes \${*}, \${?}, \${$}`,
    };
  }
  if (parsed.multi) {
    return {
      ok: false,
      message: `\${${name}} holds a list of values, which a string cannot take: test it in a Condition with ForAnyValue: or ForAllValues:`,
    };
  }
  return { ok: true, variable: parsed.key };
}

/** Whether the key holds a list (ForAnyValue:/ForAllValues: only). */
export function isMultiValued(key: PolicyVariable): boolean {
  return MULTI_VALUED.has(key.kind);
}

/** Whether resolving the key needs the client certificate's fields. */
export function needsCertificate(key: PolicyVariable): boolean {
  return key.kind === 'certificate' || key.kind === 'certificateList' || key.kind === 'availableKeys';
}

/** An address as `aws:SourceIp` holds it: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as IPv4. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped?.[1] ?? address;
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The value of a single-valued key for a connection, as a condition sees it; undefined when it
 * has none. `IsAttached` is 'true' or 'false' and always resolves.
 */
export function keyValue(key: PolicyVariable, context: PolicyContext): string | undefined {
  switch (key.kind) {
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
      if (!Object.hasOwn(attributes, key.attribute)) return undefined;
      const value = attributes[key.attribute];
      return typeof value === 'string' ? value : undefined;
    }
    case 'sourceIp':
      return context.sourceIp;
    case 'domainName':
      return context.domainName;
    case 'certificateId':
      return context.certificateId;
    case 'lastWillTopic':
      return context.lastWillTopic;
    case 'certificate': {
      const fields = context.certificate;
      if (fields === undefined || !Object.hasOwn(fields, key.field)) return undefined;
      return fields[key.field]?.[key.index];
    }
    case 'currentTime':
      return context.now === undefined ? undefined : isoSeconds(context.now());
    case 'epochTime':
      return context.now === undefined ? undefined : String(Math.floor(context.now() / 1000));
    default:
      return undefined;
  }
}

/** The values of a multi-valued key; undefined when the connection has none. */
export function keyValues(key: PolicyVariable, context: PolicyContext): readonly string[] | undefined {
  switch (key.kind) {
    case 'connectAttributes':
      return context.connectAttributes;
    case 'certificateList': {
      const fields = context.certificate;
      return fields === undefined || !Object.hasOwn(fields, key.field) ? undefined : fields[key.field];
    }
    case 'availableKeys': {
      const fields = context.certificate;
      return fields === undefined ? undefined : availableKeys(fields);
    }
    default:
      return undefined;
  }
}

/** `iot:Certificate.AvailableKeys`: the certificate keys that hold values (rarely used: built on demand). */
function availableKeys(fields: CertificateFields): readonly string[] {
  return Object.keys(fields)
    .filter((f) => (fields[f]?.length ?? 0) > 0)
    .map((f) => `iot:Certificate.${f}`);
}

/**
 * The text a `${variable}` stands for, or undefined when it does not resolve. As in AWS IoT, a
 * certificate value holding a wildcard character or longer than 1,024 characters is not substituted.
 */
export function resolveVariable(variable: PolicyVariable, context: PolicyContext): string | undefined {
  const value = keyValue(variable, context);
  if (value === undefined || variable.kind !== 'certificate') return value;
  return value.length > MAX_CERTIFICATE_VALUE_CHARS || CERTIFICATE_WILDCARDS.test(value) ? undefined : value;
}

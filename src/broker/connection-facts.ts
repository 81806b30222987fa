/**
 * What a connection itself tells a policy, beyond who the registry says the device is: its source
 * address (`aws:SourceIp`), the server name it asked for (`iot:DomainName`), its client
 * certificate (`iot:CertificateId`, `iot:Certificate.*`) and its CONNECT's options
 * (`iot:ConnectAttributes`, `iot:LastWillTopic`). Read once per connection; the certificate is
 * parsed only when a policy of the session needs its fields, since parsing costs about a
 * millisecond and most fleets never ask.
 */
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { x509 } from '../pki/index.js';
import {
  CERTIFICATE_ALTERNATIVE_NAMES,
  CERTIFICATE_NAME_ATTRIBUTES,
  type CertificateFields,
  MAX_CERTIFICATE_VALUES,
  normalizeAddress,
  type PolicyContext,
} from '../registry/index.js';
import type { ConnectionMeta } from './session.js';

export interface ConnectionFacts {
  sourceIp: string;
  /** The TLS SNI server name, else the broker's own name; absent when neither is known. */
  domainName?: string;
  certificateId?: string;
  /** The client certificate's DER (mutual TLS). */
  der?: Uint8Array;
  /** Its fields, once parsed. */
  fields?: CertificateFields;
  /** From the CONNECT: `PersistentConnect` (clean session off), `LastWill` (a will is set). */
  connectAttributes?: readonly string[];
  lastWillTopic?: string;
}

/**
 * The facts of a connection the listener hands over: `stream` is the TLS socket itself (a stream
 * of another kind, as in a unit test, gives the address only); `endpointName` stands in for a
 * missing SNI, as AWS IoT's own endpoint would.
 */
export function connectionFacts(
  stream: Duplex,
  meta: ConnectionMeta,
  endpointName?: string,
): ConnectionFacts {
  const facts: ConnectionFacts = { sourceIp: normalizeAddress(meta.address) };
  const tls = stream instanceof TLSSocket ? stream : undefined;
  const servername = tls?.servername;
  const domainName = typeof servername === 'string' && servername !== '' ? servername : endpointName;
  if (domainName !== undefined) facts.domainName = domainName.toLowerCase();
  if (meta.certificateId !== undefined) {
    facts.certificateId = meta.certificateId;
    const der = tls?.getPeerCertificate(false)?.raw;
    if (der !== undefined && der.length > 0) facts.der = der;
  }
  return facts;
}

/** Records what the CONNECT asked for (Aedes sets `clean` and the will before it authenticates). */
export function recordConnect(facts: ConnectionFacts, clean: boolean, willTopic: string | undefined): void {
  const attributes: string[] = [];
  if (!clean) attributes.push('PersistentConnect');
  if (willTopic !== undefined) attributes.push('LastWill');
  facts.connectAttributes = Object.freeze(attributes);
  // Region and account are not compared in iotdr (docs/registry.md, "Policies"): left empty.
  if (willTopic !== undefined) facts.lastWillTopic = `arn:aws:iot:::topic/${willTopic}`;
}

/** The values of a name's attribute, first MAX_CERTIFICATE_VALUES. */
function nameValues(name: x509.Name, oid: string): string[] {
  return name.getField(oid).slice(0, MAX_CERTIFICATE_VALUES);
}

/** A directory name as AWS IoT writes it: last RDN first, `type=value` in lower-case types, comma-separated. */
function directoryName(value: string): string {
  const name = new x509.Name(value);
  return name
    .toJSON()
    .reverse()
    .flatMap((rdn) =>
      Object.entries(rdn).flatMap(([type, values]) => values.map((v) => `${type.toLowerCase()}=${v}`)),
    )
    .join(',');
}

const GENERAL_NAME_KINDS: Readonly<Record<string, string>> = {
  email: 'RFC822Name',
  dns: 'DNSName',
  dn: 'DirectoryName',
  url: 'UniformResourceIdentifier',
  ip: 'IPAddress',
};

function alternativeNames(
  fields: Record<string, string[]>,
  side: string,
  names: readonly x509.GeneralName[],
): void {
  for (const kind of CERTIFICATE_ALTERNATIVE_NAMES) {
    const values = names
      .filter((n) => GENERAL_NAME_KINDS[n.type] === kind)
      .slice(0, MAX_CERTIFICATE_VALUES)
      .map((n) => (n.type === 'dn' ? directoryName(n.value) : n.value));
    if (values.length > 0) fields[`${side}.AlternativeName.${kind}`] = values;
  }
}

/**
 * The certificate's fields by AWS IoT's names (docs.aws.amazon.com/iot/latest/developerguide/
 * use-policy-variables.html): subject and issuer attributes, alternative names, the serial
 * number in decimal. A part that cannot be decoded (an alternative name of a kind the library
 * refuses) is left out, as a field the certificate lacks.
 */
export function certificateFields(der: Uint8Array): CertificateFields {
  const cert = new x509.X509Certificate(der);
  const fields: Record<string, string[]> = {};
  for (const [side, name] of [
    ['Subject', cert.subjectName],
    ['Issuer', cert.issuerName],
  ] as const) {
    for (const [attribute, oid] of Object.entries(CERTIFICATE_NAME_ATTRIBUTES)) {
      const values = nameValues(name, oid);
      if (values.length > 0) fields[`${side}.${attribute}`] = values;
    }
  }
  for (const [side, type] of [
    ['Subject', x509.SubjectAlternativeNameExtension],
    ['Issuer', x509.IssuerAlternativeNameExtension],
  ] as const) {
    try {
      const extension = cert.getExtension(type);
      if (extension !== null) alternativeNames(fields, side, extension.names.items);
    } catch {
      // Left out: see above.
    }
  }
  fields.SerialNumber = [BigInt(`0x${cert.serialNumber}`).toString(10)];
  for (const values of Object.values(fields)) Object.freeze(values);
  return Object.freeze(fields);
}

/** The certificate's fields, parsed on first use; undefined without a certificate or when it does not decode. */
function fieldsOf(facts: ConnectionFacts): CertificateFields | undefined {
  if (facts.fields === undefined && facts.der !== undefined) {
    try {
      facts.fields = certificateFields(facts.der);
    } catch {
      // The handshake accepted it and the registry knows it; a field the library cannot read is absent.
      facts.der = undefined;
    }
  }
  return facts.fields;
}

/**
 * `context` (the registry's identity) with the connection's facts; the certificate's fields only
 * when `certificate` is set (the session's policies use them). `now` is the broker's clock.
 */
export function withConnection(
  context: PolicyContext,
  facts: ConnectionFacts,
  certificate: boolean,
  now: () => number,
): PolicyContext {
  const fields = certificate ? fieldsOf(facts) : undefined;
  return {
    ...context,
    sourceIp: facts.sourceIp,
    ...(facts.domainName === undefined ? {} : { domainName: facts.domainName }),
    ...(facts.certificateId === undefined ? {} : { certificateId: facts.certificateId }),
    ...(fields === undefined ? {} : { certificate: fields }),
    now,
  };
}

/** The context of iot:Connect: the session's, with what the CONNECT asked for. */
export function connectContext(context: PolicyContext, facts: ConnectionFacts | undefined): PolicyContext {
  if (facts?.connectAttributes === undefined) return context;
  return {
    ...context,
    connectAttributes: facts.connectAttributes,
    ...(facts.lastWillTopic === undefined ? {} : { lastWillTopic: facts.lastWillTopic }),
  };
}

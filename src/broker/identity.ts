import { NotFoundError } from '../common/index.js';
import {
  type CompiledPolicySet,
  compilePolicies,
  type PolicyContext,
  parsePolicyDocument,
  type RegistryService,
  type ThingPrincipalType,
} from '../registry/index.js';

/**
 * Who a connection is, as the registry says now: what it may do (compiled policies) and what it
 * depends on, so that a registry change touching any of those re-resolves it.
 */
export type Identity = DeviceIdentity | HealthIdentity;

export interface DeviceIdentity {
  auth: 'mtls' | 'token';
  /** Certificate id (mTLS only). */
  certificateId?: string;
  /** The CA the certificate was registered with (mTLS only). */
  caCertificateId?: string;
  /**
   * The thing the connection acts as (associatedThing for mTLS), or the token's thing; absent when
   * none is associated, and then no thing variable resolves.
   */
  thingName?: string;
  thingTypeName?: string;
  thingAttributes?: Readonly<Record<string, string>>;
  /** The thing's groups and their ancestors, whose policies it inherits. */
  thingGroupNames?: readonly string[];
  /**
   * Policies that decide, including names that no longer exist (re-created ones count again): the
   * certificate's (or the token's), then those the thing inherits from its groups.
   */
  policyNames: readonly string[];
  policies: CompiledPolicySet;
  /** ms epoch past which the certificate is no longer valid (mTLS only). */
  notAfter?: number;
}

/** The broker's own health-check identity: known only in this process's memory. */
export interface HealthIdentity {
  auth: 'health';
}

export type Resolution = { ok: true; identity: Identity } | { ok: false; reason: string };

function refuse(reason: string): Resolution {
  return { ok: false, reason };
}

/** Runs a registry read; a missing entity is `undefined`, any other failure propagates. */
async function optional<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

/** Compiles the default version of each existing policy, in the order given. */
async function compileNamed(service: RegistryService, names: readonly string[]): Promise<CompiledPolicySet> {
  const documents = [];
  for (const name of names) {
    const policy = await optional(service.getPolicy(name));
    if (policy === undefined) continue;
    const version = policy.versions.find((v) => v.versionId === policy.defaultVersionId);
    if (version === undefined) continue;
    documents.push({
      name,
      version: version.versionId,
      document: parsePolicyDocument(version.document, `policies.${name}`),
    });
  }
  return compilePolicies(documents);
}

type ThingFields = Pick<
  DeviceIdentity,
  'thingName' | 'thingTypeName' | 'thingAttributes' | 'thingGroupNames'
>;

/** The thing's variables, and what it inherits from its groups. */
async function thingFields(
  service: RegistryService,
  thingName: string,
): Promise<{ fields: ThingFields; groupPolicies: readonly string[] } | undefined> {
  const thing = await optional(service.getThing(thingName));
  if (thing === undefined) return undefined;
  const inherited = await optional(service.inheritedPolicies(thingName));
  return {
    fields: {
      thingName,
      ...(thing.thingTypeName === null ? {} : { thingTypeName: thing.thingTypeName }),
      thingAttributes: Object.freeze({ ...thing.attributes }),
      thingGroupNames: Object.freeze([...(inherited?.thingGroupNames ?? [])]),
    },
    groupPolicies: inherited?.policyNames ?? [],
  };
}

/** The principal's own policies, then the thing's inherited ones not already among them. */
function withInherited(own: readonly string[], inherited: readonly string[]): string[] {
  const names = [...own];
  for (const name of inherited) if (!names.includes(name)) names.push(name);
  return names;
}

/**
 * The thing a connection with this certificate acts as, as AWS IoT associates a thing with an MQTT
 * connection ("exclusive-thing.html", "thing-policy-variables.html"): the certificate's only thing
 * when it is attached to it with EXCLUSIVE_THING, whatever the client id; otherwise
 * (NON_EXCLUSIVE_THING) the attached thing whose name is the client id, or none. A certificate
 * attached exclusively and also to another thing (two regions attached it at once, before either
 * saw the other's change) has no exclusive thing until one is detached: the client id decides.
 */
function associatedThing(
  attachments: ReadonlyArray<{ thingName: string; thingPrincipalType: ThingPrincipalType }>,
  clientId: string,
): string | undefined {
  const only = attachments.length === 1 ? attachments[0] : undefined;
  if (only?.thingPrincipalType === 'EXCLUSIVE_THING') return only.thingName;
  return attachments.some((a) => a.thingName === clientId) ? clientId : undefined;
}

/**
 * A device presenting the certificate `certificateId` with `clientId`: the certificate must be
 * registered, ACTIVE and within its validity, and the CA it was registered with (if any) registered
 * and ACTIVE. The TLS handshake already proved the device holds the certificate's key. Its policies
 * are the certificate's and those the associated thing inherits from its groups.
 */
export async function resolveCertificate(
  service: RegistryService,
  certificateId: string,
  now: number,
  clientId: string,
): Promise<Resolution> {
  const cert = await optional(service.getCertificate(certificateId));
  if (cert === undefined) return refuse('certificate not registered');
  if (cert.status !== 'ACTIVE') return refuse(`certificate is ${cert.status}`);
  const notBefore = Date.parse(cert.notBefore);
  const notAfter = Date.parse(cert.notAfter);
  if (now < notBefore) return refuse(`certificate not valid before ${cert.notBefore}`);
  if (now >= notAfter) return refuse(`certificate expired on ${cert.notAfter}`);
  if (cert.caCertificateId !== null) {
    const ca = await optional(service.getCaCertificate(cert.caCertificateId));
    if (ca === undefined) return refuse(`CA certificate ${cert.caCertificateId} not registered`);
    if (ca.status !== 'ACTIVE') return refuse(`CA certificate ${cert.caCertificateId} is ${ca.status}`);
  }
  const attachments = (await optional(service.listCertificateAttachments(certificateId))) ?? [];
  const thingName = associatedThing(attachments, clientId);
  const thing = thingName === undefined ? undefined : await thingFields(service, thingName);
  const own = (await optional(service.listCertificatePolicies(certificateId))) ?? [];
  const policyNames = withInherited(own, thing?.groupPolicies ?? []);
  return {
    ok: true,
    identity: {
      auth: 'mtls',
      certificateId,
      ...(cert.caCertificateId === null ? {} : { caCertificateId: cert.caCertificateId }),
      ...thing?.fields,
      policyNames,
      policies: await compileNamed(service, policyNames),
      notAfter,
    },
  };
}

/** A device on the token listener: username = thing name, password = its current device token. */
export async function resolveToken(
  service: RegistryService,
  thingName: string,
  token: string,
): Promise<Resolution> {
  const info = await service.verifyDeviceToken(thingName, token);
  if (info === undefined) return refuse('bad username or password');
  const thing = await thingFields(service, thingName);
  if (thing === undefined) return refuse('thing does not exist');
  const policyNames = withInherited(info.policyNames, thing.groupPolicies);
  return {
    ok: true,
    identity: {
      auth: 'token',
      ...thing.fields,
      policyNames,
      policies: await compileNamed(service, policyNames),
    },
  };
}

/** The policy variables of a device session. */
export function policyContext(identity: DeviceIdentity, clientId: string): PolicyContext {
  return {
    clientId,
    ...(identity.thingName === undefined ? {} : { thingName: identity.thingName }),
    ...(identity.thingTypeName === undefined ? {} : { thingTypeName: identity.thingTypeName }),
    ...(identity.thingAttributes === undefined ? {} : { thingAttributes: identity.thingAttributes }),
  };
}

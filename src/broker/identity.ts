import { NotFoundError } from '../common/index.js';
import {
  type CompiledPolicySet,
  compilePolicies,
  type PolicyContext,
  parsePolicyDocument,
  type RegistryService,
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
  /** Thing attached to the certificate (mTLS, when exactly one), or the token's thing. */
  thingName?: string;
  thingTypeName?: string;
  thingAttributes?: Readonly<Record<string, string>>;
  /** Policies that decide, including names that no longer exist (re-created ones count again). */
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

async function thingFields(
  service: RegistryService,
  thingName: string,
): Promise<Pick<DeviceIdentity, 'thingName' | 'thingTypeName' | 'thingAttributes'> | undefined> {
  const thing = await optional(service.getThing(thingName));
  if (thing === undefined) return undefined;
  return {
    thingName,
    ...(thing.thingTypeName === null ? {} : { thingTypeName: thing.thingTypeName }),
    thingAttributes: Object.freeze({ ...thing.attributes }),
  };
}

/**
 * A device presenting the certificate `certificateId`: it must be registered, ACTIVE and within
 * its validity, and the CA it was registered with (if any) registered and ACTIVE. The TLS
 * handshake already proved the device holds the certificate's key.
 */
export async function resolveCertificate(
  service: RegistryService,
  certificateId: string,
  now: number,
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
  const things = (await optional(service.listCertificateThings(certificateId))) ?? [];
  // As in AWS IoT, thing variables resolve only when exactly one thing is attached.
  const only = things.length === 1 ? things[0] : undefined;
  const thing = only === undefined ? undefined : await thingFields(service, only);
  const policyNames = (await optional(service.listCertificatePolicies(certificateId))) ?? [];
  return {
    ok: true,
    identity: {
      auth: 'mtls',
      certificateId,
      ...(cert.caCertificateId === null ? {} : { caCertificateId: cert.caCertificateId }),
      ...thing,
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
  return {
    ok: true,
    identity: {
      auth: 'token',
      ...thing,
      policyNames: info.policyNames,
      policies: await compileNamed(service, info.policyNames),
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

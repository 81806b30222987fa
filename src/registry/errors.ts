import { type ErrorCatalogue, IotdrError, StoreError } from '../common/index.js';

/**
 * Every code the registry raises: its entities, its document kinds (kinds.ts), device
 * shadows, policies, its stores, and the certificate checks of registration.
 */
export const REGISTRY_ERRORS = {
  IOTDR_REGISTRY_NOT_FOUND: { status: 404, meaning: 'the entity does not exist (`kind`, `key`)' },
  IOTDR_REGISTRY_VERSION_MISMATCH: {
    status: 409,
    meaning: "`expectedVersion` is not the entity's current version (`expectedVersion`, `actualVersion`)",
  },
  IOTDR_REGISTRY_STILL_ATTACHED: {
    status: 409,
    meaning: 'delete of a thing, group, certificate or policy that something is attached to (`attached`)',
  },
  IOTDR_REGISTRY_IN_USE: {
    status: 409,
    meaning: 'delete of a thing type, group or CA certificate still used (`usedBy`, `names`, `total`)',
  },
  IOTDR_REGISTRY_MISSING_REFERENCE: {
    status: 409,
    meaning: 'a thing type or parent group named by the request does not exist (`field`, `kind`, `key`)',
  },
  IOTDR_REGISTRY_THING_TYPE_DEPRECATED: { status: 409, meaning: 'a thing was given a deprecated thing type' },
  IOTDR_REGISTRY_GROUP_CYCLE: { status: 409, meaning: 'a thing group would become its own ancestor' },
  IOTDR_REGISTRY_LIMIT_EXCEEDED: {
    status: 409,
    meaning: 'a thing is already in as many groups, or a group has as many policies, as it can (`limit`)',
  },
  IOTDR_REGISTRY_CERTIFICATE_ACTIVE: {
    status: 409,
    meaning: 'delete of an ACTIVE certificate without `force`',
  },
  IOTDR_REGISTRY_CERTIFICATE_REVOKED: {
    status: 409,
    meaning: 'status change, or registration again, of a REVOKED certificate (deleted or not)',
  },
  IOTDR_REGISTRY_CA_NOT_REGISTERED: {
    status: 409,
    meaning: 'a certificate registered with a `caCertificatePem` that is not a registered CA',
  },
  IOTDR_REGISTRY_CA_INACTIVE: { status: 409, meaning: 'a certificate registered under an INACTIVE CA' },
  IOTDR_REGISTRY_EXCLUSIVE_THING: {
    status: 409,
    meaning:
      'an attachment that would give a certificate attached exclusively to one thing another thing (`certificateId`, `things`)',
  },
  IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT: {
    status: 409,
    meaning: 'a new version of a policy that already has five (`limit`, `versionIds`)',
  },
  IOTDR_REGISTRY_POLICY_DEFAULT_VERSION: {
    status: 409,
    meaning: "delete of a policy's default version (`defaultVersionId`)",
  },
  IOTDR_POLICY_INVALID: {
    status: 400,
    meaning:
      'the policy document does not parse or uses what iotdr does not evaluate (an unknown condition key or operator, Principal, a misspelt action); `errors` names each place',
  },
  IOTDR_SHADOW_INVALID: {
    status: 400,
    meaning: 'a shadow request that is not UTF-8 JSON of the right shape, or names a thing that cannot exist',
  },
  IOTDR_SHADOW_TOO_LARGE: {
    status: 413,
    meaning: 'a shadow request over 9,216 bytes, or a resulting state over 8,192 bytes',
  },
  IOTDR_SHADOW_NOT_FOUND: { status: 404, meaning: 'get or delete of a shadow that does not exist' },
  IOTDR_SHADOW_THING_NOT_FOUND: {
    status: 404,
    meaning: 'a shadow update of a thing the registry does not have',
  },
  IOTDR_SHADOW_VERSION_CONFLICT: { status: 409, meaning: "`version` is not the shadow's current version" },
  IOTDR_STORE_UNAVAILABLE: {
    status: 503,
    meaning: "the registry's database cannot be opened or reached (PostgreSQL connection lost)",
  },
  IOTDR_STORE_TX_ABORTED: {
    status: 503,
    meaning: 'a statement of a transaction failed, so the whole transaction was rolled back',
  },
  IOTDR_STORE_CLOSED: { status: 503, meaning: 'the store is closed: the region is stopping' },
  IOTDR_STORE_NOT_INITIALIZED: {
    status: 503,
    meaning: "the store was used before init(), or its schema's sequence counter is missing",
  },
  IOTDR_STORE_CONFIG: {
    meaning: "the store's options are not usable (SQLite path, PostgreSQL URL, schema name, pool size)",
  },
  IOTDR_STORE_SCHEMA_TOO_NEW: {
    meaning: 'the database was written by a newer iotdr (a higher schema version); the region does not start',
  },
  IOTDR_PKI_CERTIFICATE_EXPIRED: {
    status: 400,
    meaning: 'the certificate (or its CA) to register has expired',
  },
  IOTDR_PKI_UNEXPECTED_CA: {
    status: 400,
    meaning: 'a CA certificate was given where a device certificate is registered',
  },
  IOTDR_PKI_NOT_SIGNED_BY_CA: {
    status: 400,
    meaning: '`certificatePem` is not signed by `caCertificatePem`',
  },
  IOTDR_PKI_NOT_A_CA: {
    status: 400,
    meaning: '`caCertificatePem` is not a CA certificate (basicConstraints cA)',
  },
  IOTDR_PKI_UNAVAILABLE: {
    status: 503,
    meaning: 'a certificate was asked of a region that has no certificate authority',
  },
  // Why an entity is refused by its document kind (kinds.ts). A replicated change refused is
  // dead-lettered with the code; a component writing a document its own kind refuses has a bug,
  // hence 500.
  IOTDR_REGISTRY_UNKNOWN_KIND: {
    status: 500,
    meaning: "no document kind of that name is registered with this region's registry",
  },
  IOTDR_REGISTRY_INVALID_ENTITY: {
    status: 500,
    meaning: 'the key, ref or document of an entity does not fit its kind',
  },
} as const satisfies ErrorCatalogue;

/** The codes a document kind refuses an entity with. */
export type DocumentKindErrorCode = 'IOTDR_REGISTRY_UNKNOWN_KIND' | 'IOTDR_REGISTRY_INVALID_ENTITY';

type RegistryErrors = typeof REGISTRY_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends RegistryErrors {}
}

/** The codes a ShadowError may carry. */
export type ShadowErrorCode = Extract<keyof RegistryErrors, `IOTDR_SHADOW_${string}`>;

export function storeClosed(): StoreError {
  return new StoreError('IOTDR_STORE_CLOSED', 'the store is closed');
}

export function storeNotInitialized(message = 'init() the store before use'): StoreError {
  return new StoreError('IOTDR_STORE_NOT_INITIALIZED', message);
}

export function pkiUnavailable(): IotdrError {
  return new IotdrError(
    'IOTDR_PKI_UNAVAILABLE',
    'this region has no certificate authority to issue certificates',
    {
      status: 503,
    },
  );
}

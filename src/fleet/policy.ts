/**
 * A policy the platform writes itself (the fleet's device template) may change with each release,
 * and a policy keeps at most MAX_POLICY_VERSIONS (5) versions: the registry refuses a sixth
 * (IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT) rather than drop one. So that any number of upgrades keep
 * working, the platform brings such a policy to its document itself: nothing is written when the
 * default version already says it; otherwise, with five versions, the oldest one that is not the
 * default goes first, then the document becomes the new default version.
 */
import { isDeepStrictEqual } from 'node:util';
import { IotdrError } from '../common/index.js';
import type { ApiClient } from '../http/index.js';
import {
  MAX_POLICY_VERSIONS,
  type PolicyDocument,
  parsePolicyDocument,
  REGISTRY_ROUTES,
} from '../registry/index.js';

/** What bringing a policy to its document did. */
export type PolicyOutcome =
  | { type: 'unchanged' }
  | { type: 'created' }
  | { type: 'updated'; defaultVersionId: string; deletedVersionId?: string };

/** Reads and writes tried when another writer changes the policy between them. */
const ATTEMPTS = 3;

export async function ensurePolicy(
  api: ApiClient,
  name: string,
  document: PolicyDocument,
): Promise<PolicyOutcome> {
  // As the registry stores it (Action and Resource as arrays), plain JSON as the API answers it.
  const wanted: unknown = JSON.parse(JSON.stringify(parsePolicyDocument(document)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await bringTo(api, name, document, wanted);
    } catch (error) {
      // A write in between (a version added or deleted, the policy deleted): read again.
      const raced =
        error instanceof IotdrError &&
        (error.status === 409 || error.code === 'IOTDR_REGISTRY_NOT_FOUND') &&
        attempt < ATTEMPTS;
      if (!raced) throw error;
    }
  }
}

async function bringTo(
  api: ApiClient,
  name: string,
  document: PolicyDocument,
  wanted: unknown,
): Promise<PolicyOutcome> {
  const put = () =>
    // A copy: a plain object, as the route's JSON body takes it.
    api.request(REGISTRY_ROUTES.putPolicy, { params: { name }, body: { policyDocument: { ...document } } });
  const current = await api.request(REGISTRY_ROUTES.getPolicy, { params: { name } }).catch((error) => {
    if (error instanceof IotdrError && error.code === 'IOTDR_REGISTRY_NOT_FOUND') return undefined;
    throw error;
  });
  if (!current) {
    await put();
    return { type: 'created' };
  }
  const byDefault = current.versions.find((v) => v.versionId === current.defaultVersionId);
  if (byDefault && isDeepStrictEqual(byDefault.document, wanted)) return { type: 'unchanged' };
  let deletedVersionId: string | undefined;
  if (current.versions.length >= MAX_POLICY_VERSIONS) {
    // Version ids only grow, so the lowest is the oldest; the default is never deleted.
    const [oldest] = current.versions
      .filter((v) => v.versionId !== current.defaultVersionId)
      .sort((a, b) => Number(a.versionId) - Number(b.versionId));
    if (oldest) {
      await api.request(REGISTRY_ROUTES.deletePolicyVersion, {
        params: { name, versionId: oldest.versionId },
        query: { expectedVersion: current.version },
      });
      deletedVersionId = oldest.versionId;
    }
  }
  const made = await put();
  return {
    type: 'updated',
    defaultVersionId: made.defaultVersionId,
    ...(deletedVersionId === undefined ? {} : { deletedVersionId }),
  };
}

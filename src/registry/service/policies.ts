import type { z } from 'zod';
import { ConflictError, NotFoundError } from '../../common/index.js';
import {
  type GroupPolicyDoc,
  KIND,
  MAX_POLICY_VERSIONS,
  type PolicyDoc,
  type PolicyPrincipalDoc,
  type patchPolicyBody,
  type putPolicyBody,
} from '../model.js';
import { parsePolicyDocument } from '../policy/index.js';
import {
  attach,
  canonicalJson,
  checkVersion,
  detach,
  isoNow,
  listAll,
  live,
  loadAny,
  type PutResult,
  put,
  remove,
  requireLive,
  type ServiceContext,
  view,
  writeTransaction,
} from './core.js';

export type Policy = PolicyDoc & { version: number };
export type PolicyPrincipal = PolicyPrincipalDoc & { version: number };

/** The highest version id a policy ever gave (older documents do not record it). */
function highestVersionId(doc: PolicyDoc): number {
  return Math.max(Number(doc.highestVersionId ?? 0), ...doc.versions.map((v) => Number(v.versionId)));
}

/**
 * Creates the policy, or adds a version and makes it the default (AWS IoT CreatePolicyVersion with
 * setAsDefault). A PUT with the document the default version already has changes nothing, so a
 * retried request does not pile up versions. A policy has at most five versions: a sixth is refused
 * (AWS IoT's VersionsLimitExceededException) until one other than the default is deleted.
 */
export async function putPolicy(
  ctx: ServiceContext,
  name: string,
  body: z.infer<typeof putPolicyBody>,
): Promise<PutResult<Policy>> {
  // Parsed before the transaction: invalid documents never reach the store.
  const document = parsePolicyDocument(body.policyDocument, 'policyDocument');
  return writeTransaction(ctx, async (tx) => {
    const previous = await loadAny(tx, KIND.policy, name);
    checkVersion(KIND.policy, name, previous, body.expectedVersion);
    const current = live(previous) ? (previous.doc as unknown as PolicyDoc) : undefined;
    const now = isoNow(ctx);
    if (current && live(previous)) {
      const def = current.versions.find((v) => v.versionId === current.defaultVersionId);
      if (def && canonicalJson(def.document) === canonicalJson(document)) {
        return { item: view<PolicyDoc>(previous), created: false, changed: false };
      }
      if (current.versions.length >= MAX_POLICY_VERSIONS) {
        const versionIds = current.versions.map((v) => v.versionId);
        throw new ConflictError(
          'IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT',
          `policy '${name}' already has ${versionIds.length} versions (${versionIds.join(', ')}), the most a policy can have: delete one that is not the default (${current.defaultVersionId}) first`,
          { limit: MAX_POLICY_VERSIONS, versionIds, defaultVersionId: current.defaultVersionId },
        );
      }
    }
    const nextId = String((current ? highestVersionId(current) : 0) + 1);
    const doc: PolicyDoc = {
      policyName: name,
      defaultVersionId: nextId,
      versions: [...(current?.versions ?? []), { versionId: nextId, document, createdAt: now }],
      highestVersionId: nextId,
      createdAt: current?.createdAt ?? now,
      updatedAt: now,
    };
    const version = await put(ctx, tx, KIND.policy, name, null, { ...doc }, previous);
    return { item: { ...doc, version }, created: current === undefined, changed: true };
  });
}

function versionNotFound(name: string, versionId: string): NotFoundError {
  return new NotFoundError('IOTDR_REGISTRY_NOT_FOUND', `policy '${name}' has no version ${versionId}`, {
    kind: KIND.policy,
    key: name,
    versionId,
  });
}

/** Makes an existing version the one that decides (AWS IoT SetDefaultPolicyVersion). */
export async function setDefaultPolicyVersion(
  ctx: ServiceContext,
  name: string,
  body: z.infer<typeof patchPolicyBody>,
): Promise<Policy> {
  return writeTransaction(ctx, async (tx) => {
    const record = await requireLive(tx, KIND.policy, name);
    checkVersion(KIND.policy, name, record, body.expectedVersion);
    const doc = record.doc as unknown as PolicyDoc;
    if (!doc.versions.some((v) => v.versionId === body.defaultVersionId)) {
      throw versionNotFound(name, body.defaultVersionId);
    }
    if (doc.defaultVersionId === body.defaultVersionId) return view<PolicyDoc>(record);
    const next: PolicyDoc = {
      ...doc,
      defaultVersionId: body.defaultVersionId,
      highestVersionId: String(highestVersionId(doc)),
      updatedAt: isoNow(ctx),
    };
    const version = await put(ctx, tx, KIND.policy, name, null, { ...next }, record);
    return { ...next, version };
  });
}

/**
 * Deletes a version other than the default (AWS IoT DeletePolicyVersion: the default version can
 * only go with the policy). Its id is never given again.
 */
export async function deletePolicyVersion(
  ctx: ServiceContext,
  name: string,
  versionId: string,
  options: { expectedVersion?: number },
): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const record = await requireLive(tx, KIND.policy, name);
    checkVersion(KIND.policy, name, record, options.expectedVersion);
    const doc = record.doc as unknown as PolicyDoc;
    if (!doc.versions.some((v) => v.versionId === versionId)) throw versionNotFound(name, versionId);
    if (doc.defaultVersionId === versionId) {
      throw new ConflictError(
        'IOTDR_REGISTRY_POLICY_DEFAULT_VERSION',
        `version ${versionId} is the default version of policy '${name}': make another version the default first, or delete the policy`,
        { defaultVersionId: versionId },
      );
    }
    const next: PolicyDoc = {
      ...doc,
      versions: doc.versions.filter((v) => v.versionId !== versionId),
      highestVersionId: String(highestVersionId(doc)),
      updatedAt: isoNow(ctx),
    };
    await put(ctx, tx, KIND.policy, name, null, { ...next }, record);
  });
}

export async function getPolicy(ctx: ServiceContext, name: string): Promise<Policy> {
  return view<PolicyDoc>(await requireLive(ctx.store, KIND.policy, name));
}

export async function deletePolicy(
  ctx: ServiceContext,
  name: string,
  options: { force?: boolean; expectedVersion?: number },
): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const policy = await requireLive(tx, KIND.policy, name);
    checkVersion(KIND.policy, name, policy, options.expectedVersion);
    const certificates = await listAll(tx, KIND.policyPrincipal, { ref: name });
    const groups = await listAll(tx, KIND.groupPolicy, { ref: name });
    if (certificates.length + groups.length > 0 && !options.force) {
      const attached = [
        ...certificates.map((t) => ({
          kind: KIND.certificate,
          key: (t.doc as unknown as PolicyPrincipalDoc).certificateId,
        })),
        ...groups.map((g) => ({
          kind: KIND.thingGroup,
          key: (g.doc as unknown as GroupPolicyDoc).thingGroupName,
        })),
      ];
      const shown = attached.slice(0, 20);
      throw new ConflictError(
        'IOTDR_REGISTRY_STILL_ATTACHED',
        `policy '${name}' is still attached to ${attached.length} certificate(s) and thing group(s): ${shown.map((a) => `${a.kind} '${a.key}'`).join(', ')}${attached.length > shown.length ? ', …' : ''}; detach it or delete with force=true`,
        { attached: shown, total: attached.length },
      );
    }
    for (const t of [...certificates, ...groups]) await remove(ctx, tx, t);
    await remove(ctx, tx, policy);
  });
}

export function attachPolicy(
  ctx: ServiceContext,
  certificateId: string,
  policyName: string,
): Promise<PutResult<PolicyPrincipal>> {
  const doc: PolicyPrincipalDoc = { certificateId, policyName, attachedAt: isoNow(ctx) };
  return attach(ctx, {
    kind: KIND.policyPrincipal,
    key: `${certificateId}|${policyName}`,
    ref: policyName,
    ends: [
      [KIND.certificate, certificateId],
      [KIND.policy, policyName],
    ],
    doc,
  });
}

export function detachPolicy(ctx: ServiceContext, certificateId: string, policyName: string): Promise<void> {
  return detach(ctx, KIND.policyPrincipal, `${certificateId}|${policyName}`);
}

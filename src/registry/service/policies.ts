import type { z } from 'zod';
import { ConflictError } from '../../common/index.js';
import {
  KIND,
  MAX_POLICY_VERSIONS,
  type PolicyDoc,
  type PolicyPrincipalDoc,
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

/**
 * Creates the policy, or adds a version and makes it the default. A PUT with the document the
 * default version already has changes nothing, so a retried request does not pile up versions.
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
    }
    const nextId = String(Math.max(0, ...(current?.versions ?? []).map((v) => Number(v.versionId))) + 1);
    let versions = [...(current?.versions ?? []), { versionId: nextId, document, createdAt: now }];
    while (versions.length > MAX_POLICY_VERSIONS) versions = versions.slice(1);
    const doc: PolicyDoc = {
      policyName: name,
      defaultVersionId: nextId,
      versions,
      createdAt: current?.createdAt ?? now,
      updatedAt: now,
    };
    const version = await put(ctx, tx, KIND.policy, name, null, { ...doc }, previous);
    return { item: { ...doc, version }, created: current === undefined, changed: true };
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
    const targets = await listAll(tx, KIND.policyPrincipal, { ref: name });
    if (targets.length > 0 && !options.force) {
      const ids = targets.map((t) => (t.doc as unknown as PolicyPrincipalDoc).certificateId);
      throw new ConflictError(
        'IOTDR_REGISTRY_STILL_ATTACHED',
        `policy '${name}' is still attached to ${ids.length} certificate(s): ${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', …' : ''}; detach it or delete with force=true`,
        { attached: ids.slice(0, 20).map((id) => ({ kind: KIND.certificate, key: id })), total: ids.length },
      );
    }
    for (const t of targets) await remove(ctx, tx, t);
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

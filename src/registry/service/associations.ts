import { ConflictError } from '../../common/index.js';
import {
  DEFAULT_THING_PRINCIPAL_TYPE,
  type GroupPolicyDoc,
  KIND,
  MAX_GROUP_POLICIES,
  type ThingGroupDoc,
  type ThingPrincipalDoc,
  type ThingPrincipalType,
} from '../model.js';
import type { StoreReader } from '../store/index.js';
import {
  attach,
  detach,
  isoNow,
  listAll,
  live,
  loadAny,
  type PutResult,
  put,
  requireLive,
  type ServiceContext,
  writeTransaction,
} from './core.js';

/**
 * Certificates attached to things, with AWS IoT's association types, and policies attached to
 * thing groups, which the groups' things inherit.
 */

export type ThingPrincipal = Required<ThingPrincipalDoc> & { version: number };
export type GroupPolicy = GroupPolicyDoc & { version: number };

/** One thing a certificate is attached to, and how. */
export interface CertificateThing {
  thingName: string;
  thingPrincipalType: ThingPrincipalType;
}

function typeOf(doc: ThingPrincipalDoc): ThingPrincipalType {
  return doc.thingPrincipalType ?? DEFAULT_THING_PRINCIPAL_TYPE;
}

function principalView(doc: ThingPrincipalDoc, version: number): ThingPrincipal {
  return { ...doc, thingPrincipalType: typeOf(doc), version };
}

/** The things a certificate is attached to, in name order, with the type of each attachment. */
export async function certificateThings(tx: StoreReader, certificateId: string): Promise<CertificateThing[]> {
  const rows = await listAll(tx, KIND.thingPrincipal, { ref: certificateId });
  return rows
    .map((r) => {
      const doc = r.doc as unknown as ThingPrincipalDoc;
      return { thingName: doc.thingName, thingPrincipalType: typeOf(doc) };
    })
    .sort((a, b) => (a.thingName < b.thingName ? -1 : a.thingName > b.thingName ? 1 : 0));
}

function exclusiveConflict(certificateId: string, detail: string, things: string[]): ConflictError {
  return new ConflictError('IOTDR_REGISTRY_EXCLUSIVE_THING', `certificate ${certificateId} ${detail}`, {
    certificateId,
    things: things.slice(0, 20),
  });
}

/**
 * Attaches a certificate to a thing (AWS IoT AttachThingPrincipal). An EXCLUSIVE_THING attachment
 * must be the certificate's only one, and a certificate attached exclusively takes no other thing
 * ("exclusive-thing.html": "the certificate cannot be used with other things"). Without a type, a
 * new attachment is NON_EXCLUSIVE_THING and an existing one keeps its type, so a retried attach
 * changes nothing; a different type changes the attachment, under the same rule.
 */
export function attachCertificate(
  ctx: ServiceContext,
  thingName: string,
  certificateId: string,
  type?: ThingPrincipalType,
): Promise<PutResult<ThingPrincipal>> {
  const key = `${thingName}|${certificateId}`;
  return writeTransaction(ctx, async (tx) => {
    await requireLive(tx, KIND.thing, thingName);
    await requireLive(tx, KIND.certificate, certificateId);
    const previous = await loadAny(tx, KIND.thingPrincipal, key);
    const current = live(previous) ? (previous.doc as unknown as ThingPrincipalDoc) : undefined;
    const wanted = type ?? (current ? typeOf(current) : DEFAULT_THING_PRINCIPAL_TYPE);
    if (current && live(previous) && typeOf(current) === wanted) {
      return { item: principalView(current, previous.version), created: false, changed: false };
    }
    const others = (await certificateThings(tx, certificateId)).filter((t) => t.thingName !== thingName);
    const exclusive = others
      .filter((t) => t.thingPrincipalType === 'EXCLUSIVE_THING')
      .map((t) => t.thingName);
    if (exclusive.length > 0) {
      throw exclusiveConflict(
        certificateId,
        `is attached exclusively to thing '${exclusive[0]}': detach it first to attach '${thingName}'`,
        exclusive,
      );
    }
    if (wanted === 'EXCLUSIVE_THING' && others.length > 0) {
      const names = others.map((t) => t.thingName);
      throw exclusiveConflict(
        certificateId,
        `is also attached to ${names.length} other thing(s): ${names.slice(0, 20).join(', ')}; an exclusive attachment must be its only one: detach them first`,
        names,
      );
    }
    const doc: ThingPrincipalDoc = {
      thingName,
      certificateId,
      attachedAt: current?.attachedAt ?? isoNow(ctx),
      thingPrincipalType: wanted,
    };
    const version = await put(ctx, tx, KIND.thingPrincipal, key, certificateId, { ...doc }, previous);
    return { item: principalView(doc, version), created: current === undefined, changed: true };
  });
}

/** One attachment of a certificate to a thing, with its type. */
export async function getThingPrincipal(
  tx: StoreReader,
  thingName: string,
  certificateId: string,
): Promise<ThingPrincipal> {
  const record = await requireLive(tx, KIND.thingPrincipal, `${thingName}|${certificateId}`);
  return principalView(record.doc as unknown as ThingPrincipalDoc, record.version);
}

export function detachCertificate(
  ctx: ServiceContext,
  thingName: string,
  certificateId: string,
): Promise<void> {
  return detach(ctx, KIND.thingPrincipal, `${thingName}|${certificateId}`);
}

/** Attaches a policy to a thing group (AWS IoT AttachPolicy with a thing group as target). */
export function attachGroupPolicy(
  ctx: ServiceContext,
  group: string,
  policyName: string,
): Promise<PutResult<GroupPolicy>> {
  const doc: GroupPolicyDoc = { thingGroupName: group, policyName, attachedAt: isoNow(ctx) };
  return attach(ctx, {
    kind: KIND.groupPolicy,
    key: `${group}|${policyName}`,
    ref: policyName,
    ends: [
      [KIND.thingGroup, group],
      [KIND.policy, policyName],
    ],
    doc,
    check: async (tx) => {
      const attached = await tx.count(KIND.groupPolicy, { prefix: `${group}|` });
      if (attached >= MAX_GROUP_POLICIES) {
        throw new ConflictError(
          'IOTDR_REGISTRY_LIMIT_EXCEEDED',
          `thing group '${group}' already has ${attached} policies, the most a group can have`,
          { limit: MAX_GROUP_POLICIES },
        );
      }
    },
  });
}

export function detachGroupPolicy(ctx: ServiceContext, group: string, policyName: string): Promise<void> {
  return detach(ctx, KIND.groupPolicy, `${group}|${policyName}`);
}

/** Policies attached to a group, in name order. */
export async function groupPolicies(tx: StoreReader, group: string): Promise<string[]> {
  const rows = await listAll(tx, KIND.groupPolicy, { prefix: `${group}|` });
  return rows.map((r) => r.key.slice(group.length + 1));
}

/** What a thing inherits from its groups. */
export interface InheritedPolicies {
  /** The thing's groups and their ancestors, each once: a change to any of them may change the policies. */
  thingGroupNames: string[];
  /** The policies attached to those groups: each group's (in name order) before its parent's, each once. */
  policyNames: string[];
}

/**
 * The policies a thing inherits: those attached to each of its groups and to every ancestor of
 * those ("thing-groups.html": a policy attached to a parent group is inherited by its child groups
 * and by all of the things in the group and in its child groups).
 */
export async function inheritedPolicies(tx: StoreReader, thingName: string): Promise<InheritedPolicies> {
  const direct = (await listAll(tx, KIND.groupMember, { ref: thingName })).map((r) =>
    r.key.slice(0, r.key.length - thingName.length - 1),
  );
  const groups: string[] = [];
  const policies = new Set<string>();
  for (const start of direct) {
    // Groups never form a cycle (things.ts refuses one); the bound guards against a replicated one.
    let cursor: string | null = start;
    for (let depth = 0; cursor !== null && depth <= 100 && !groups.includes(cursor); depth++) {
      groups.push(cursor);
      for (const p of await groupPolicies(tx, cursor)) policies.add(p);
      const group = await tx.get(KIND.thingGroup, cursor);
      cursor = live(group) ? (group.doc as unknown as ThingGroupDoc).parentGroupName : null;
    }
  }
  return { thingGroupNames: groups, policyNames: [...policies] };
}

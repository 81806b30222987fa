import type { z } from 'zod';
import { ConflictError } from '../../common/index.js';
import {
  type GroupMemberDoc,
  KIND,
  MAX_GROUPS_PER_THING,
  type putThingBody,
  type putThingGroupBody,
  type putThingTypeBody,
  type ThingDoc,
  type ThingGroupDoc,
  type ThingTypeDoc,
} from '../model.js';
import {
  attach,
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
  sameDoc,
  view,
  writeTransaction,
} from './core.js';

export type Thing = ThingDoc & { version: number };
export type ThingType = ThingTypeDoc & { version: number };
export type ThingGroup = ThingGroupDoc & { version: number };
export type GroupMember = GroupMemberDoc & { version: number };

function stillUsed(what: string, by: string, names: string[], total: number): ConflictError {
  const shown = names.slice(0, 20);
  return new ConflictError(
    'IOTDR_REGISTRY_IN_USE',
    `${what} is still used by ${total} ${by}: ${shown.join(', ')}${total > shown.length ? ', …' : ''}`,
    { usedBy: by, names: shown, total },
  );
}

export async function putThing(
  ctx: ServiceContext,
  name: string,
  body: z.infer<typeof putThingBody>,
): Promise<PutResult<Thing>> {
  return writeTransaction(ctx, async (tx) => {
    const previous = await loadAny(tx, KIND.thing, name);
    checkVersion(KIND.thing, name, previous, body.expectedVersion);
    const current = live(previous) ? (previous.doc as unknown as ThingDoc) : undefined;
    const thingTypeName =
      body.thingTypeName === undefined ? (current?.thingTypeName ?? null) : body.thingTypeName;
    if (thingTypeName !== null && thingTypeName !== current?.thingTypeName) {
      const type = await tx.get(KIND.thingType, thingTypeName);
      if (!live(type)) {
        throw new ConflictError(
          'IOTDR_REGISTRY_MISSING_REFERENCE',
          `thing type '${thingTypeName}' does not exist: create it first`,
          { field: 'thingTypeName', kind: KIND.thingType, key: thingTypeName },
        );
      }
      if ((type.doc as unknown as ThingTypeDoc).deprecated) {
        throw new ConflictError(
          'IOTDR_REGISTRY_THING_TYPE_DEPRECATED',
          `thing type '${thingTypeName}' is deprecated: no thing can take it`,
          { thingTypeName },
        );
      }
    }
    const now = isoNow(ctx);
    const doc: ThingDoc = {
      thingName: name,
      thingTypeName,
      attributes: body.attributes ?? current?.attributes ?? {},
      createdAt: current?.createdAt ?? now,
      updatedAt: now,
    };
    if (current && live(previous) && sameDoc(previous.doc, { ...doc })) {
      return { item: view<ThingDoc>(previous), created: false, changed: false };
    }
    const version = await put(ctx, tx, KIND.thing, name, thingTypeName, { ...doc }, previous);
    return { item: { ...doc, version }, created: current === undefined, changed: true };
  });
}

export async function getThing(ctx: ServiceContext, name: string): Promise<Thing> {
  return view<ThingDoc>(await requireLive(ctx.store, KIND.thing, name));
}

export async function deleteThing(
  ctx: ServiceContext,
  name: string,
  options: { force?: boolean; expectedVersion?: number },
): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const thing = await requireLive(tx, KIND.thing, name);
    checkVersion(KIND.thing, name, thing, options.expectedVersion);
    const principals = await listAll(tx, KIND.thingPrincipal, { prefix: `${name}|` });
    if (principals.length > 0 && !options.force) {
      const ids = principals.map((p) => p.key.slice(name.length + 1));
      throw new ConflictError(
        'IOTDR_REGISTRY_STILL_ATTACHED',
        `thing '${name}' still has ${ids.length} certificate(s) attached: ${ids.join(', ')}; detach them or delete with force=true`,
        { attached: ids.map((id) => ({ kind: KIND.certificate, key: id })) },
      );
    }
    for (const p of principals) await remove(ctx, tx, p);
    // Like AWS IoT, deleting a thing removes it from its groups.
    for (const m of await listAll(tx, KIND.groupMember, { ref: name })) await remove(ctx, tx, m);
    // The thing's device token authenticates nothing without it: it goes too.
    const token = await tx.get(KIND.deviceToken, name);
    if (token && !token.deleted) await remove(ctx, tx, token);
    await remove(ctx, tx, thing);
  });
}

export async function putThingType(
  ctx: ServiceContext,
  name: string,
  body: z.infer<typeof putThingTypeBody>,
): Promise<PutResult<ThingType>> {
  return writeTransaction(ctx, async (tx) => {
    const previous = await loadAny(tx, KIND.thingType, name);
    checkVersion(KIND.thingType, name, previous, body.expectedVersion);
    const current = live(previous) ? (previous.doc as unknown as ThingTypeDoc) : undefined;
    const now = isoNow(ctx);
    const deprecated = body.deprecated ?? current?.deprecated ?? false;
    const doc: ThingTypeDoc = {
      thingTypeName: name,
      description: body.description === undefined ? (current?.description ?? null) : body.description,
      searchableAttributes: body.searchableAttributes ?? current?.searchableAttributes ?? [],
      deprecated,
      deprecatedAt: deprecated ? (current?.deprecatedAt ?? now) : null,
      createdAt: current?.createdAt ?? now,
      updatedAt: now,
    };
    if (
      current &&
      live(previous) &&
      sameDoc(previous.doc, { ...doc }, ['createdAt', 'updatedAt', 'deprecatedAt'])
    ) {
      return { item: view<ThingTypeDoc>(previous), created: false, changed: false };
    }
    const version = await put(ctx, tx, KIND.thingType, name, null, { ...doc }, previous);
    return { item: { ...doc, version }, created: current === undefined, changed: true };
  });
}

export async function getThingType(ctx: ServiceContext, name: string): Promise<ThingType> {
  return view<ThingTypeDoc>(await requireLive(ctx.store, KIND.thingType, name));
}

export async function deleteThingType(
  ctx: ServiceContext,
  name: string,
  options: { expectedVersion?: number },
): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const type = await requireLive(tx, KIND.thingType, name);
    checkVersion(KIND.thingType, name, type, options.expectedVersion);
    const total = await tx.count(KIND.thing, { ref: name });
    if (total > 0) {
      const users = await tx.list(KIND.thing, { ref: name, limit: 20 });
      throw stillUsed(
        `thing type '${name}'`,
        'things',
        users.map((u) => u.key),
        total,
      );
    }
    await remove(ctx, tx, type);
  });
}

export async function putThingGroup(
  ctx: ServiceContext,
  name: string,
  body: z.infer<typeof putThingGroupBody>,
): Promise<PutResult<ThingGroup>> {
  return writeTransaction(ctx, async (tx) => {
    const previous = await loadAny(tx, KIND.thingGroup, name);
    checkVersion(KIND.thingGroup, name, previous, body.expectedVersion);
    const current = live(previous) ? (previous.doc as unknown as ThingGroupDoc) : undefined;
    const parent =
      body.parentGroupName === undefined ? (current?.parentGroupName ?? null) : body.parentGroupName;
    if (parent !== null && parent !== current?.parentGroupName) {
      // Walk up from the new parent: reaching this group would make a cycle.
      let cursor: string | null = parent;
      for (let depth = 0; cursor !== null; depth++) {
        if (cursor === name || depth > 100) {
          throw new ConflictError(
            'IOTDR_REGISTRY_GROUP_CYCLE',
            `thing group '${parent}' is '${name}' or one of its descendants: a group cannot be its own ancestor`,
            { parentGroupName: parent },
          );
        }
        const ancestor = await tx.get(KIND.thingGroup, cursor);
        if (!live(ancestor)) {
          throw new ConflictError(
            'IOTDR_REGISTRY_MISSING_REFERENCE',
            `parent thing group '${cursor}' does not exist: create it first`,
            { field: 'parentGroupName', kind: KIND.thingGroup, key: cursor },
          );
        }
        cursor = (ancestor.doc as unknown as ThingGroupDoc).parentGroupName;
      }
    }
    const now = isoNow(ctx);
    const doc: ThingGroupDoc = {
      thingGroupName: name,
      parentGroupName: parent,
      description: body.description === undefined ? (current?.description ?? null) : body.description,
      attributes: body.attributes ?? current?.attributes ?? {},
      createdAt: current?.createdAt ?? now,
      updatedAt: now,
    };
    if (current && live(previous) && sameDoc(previous.doc, { ...doc })) {
      return { item: view<ThingGroupDoc>(previous), created: false, changed: false };
    }
    const version = await put(ctx, tx, KIND.thingGroup, name, parent, { ...doc }, previous);
    return { item: { ...doc, version }, created: current === undefined, changed: true };
  });
}

export async function getThingGroup(ctx: ServiceContext, name: string): Promise<ThingGroup> {
  return view<ThingGroupDoc>(await requireLive(ctx.store, KIND.thingGroup, name));
}

export async function deleteThingGroup(
  ctx: ServiceContext,
  name: string,
  options: { force?: boolean; expectedVersion?: number },
): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const group = await requireLive(tx, KIND.thingGroup, name);
    checkVersion(KIND.thingGroup, name, group, options.expectedVersion);
    const children = await tx.count(KIND.thingGroup, { ref: name });
    if (children > 0) {
      const some = await tx.list(KIND.thingGroup, { ref: name, limit: 20 });
      throw stillUsed(
        `thing group '${name}'`,
        'child groups (delete them first)',
        some.map((c) => c.key),
        children,
      );
    }
    const members = await listAll(tx, KIND.groupMember, { prefix: `${name}|` });
    const policies = await listAll(tx, KIND.groupPolicy, { prefix: `${name}|` });
    if (members.length + policies.length > 0 && !options.force) {
      const attached = [
        ...members.map((m) => ({ kind: KIND.thing, key: m.ref })),
        ...policies.map((p) => ({ kind: KIND.policy, key: p.ref })),
      ];
      throw new ConflictError(
        'IOTDR_REGISTRY_STILL_ATTACHED',
        `thing group '${name}' still has ${members.length} member(s) and ${policies.length} policy(ies); remove them or delete with force=true`,
        { attached: attached.slice(0, 20), total: attached.length },
      );
    }
    for (const a of [...members, ...policies]) await remove(ctx, tx, a);
    await remove(ctx, tx, group);
  });
}

export function addThingToGroup(
  ctx: ServiceContext,
  group: string,
  thing: string,
): Promise<PutResult<GroupMember>> {
  const doc: GroupMemberDoc = { thingGroupName: group, thingName: thing, addedAt: isoNow(ctx) };
  return attach(ctx, {
    kind: KIND.groupMember,
    key: `${group}|${thing}`,
    ref: thing,
    ends: [
      [KIND.thingGroup, group],
      [KIND.thing, thing],
    ],
    doc,
    check: async (tx) => {
      const groups = await tx.count(KIND.groupMember, { ref: thing });
      if (groups >= MAX_GROUPS_PER_THING) {
        throw new ConflictError(
          'IOTDR_REGISTRY_LIMIT_EXCEEDED',
          `thing '${thing}' is already in ${groups} groups, the most a thing can be in`,
          { limit: MAX_GROUPS_PER_THING },
        );
      }
    },
  });
}

export function removeThingFromGroup(ctx: ServiceContext, group: string, thing: string): Promise<void> {
  return detach(ctx, KIND.groupMember, `${group}|${thing}`);
}

/**
 * A device's life through command and control: onboarding in one call (thing, certificate, policy
 * from a template, groups), suspension (certificates INACTIVE: the broker of every region closes
 * the live sessions as the change reaches it), resumption, and decommissioning (everything the
 * device owned, nothing shared).
 */
import { z } from 'zod';
import { IotdrError, NotFoundError } from '../common/index.js';
import {
  attributesSchema,
  type Certificate,
  policyNameSchema,
  type RegistryService,
  thingGroupNameSchema,
  thingNameSchema,
} from '../registry/index.js';
import { CNC_KIND } from './documents.js';
import { DeviceExistsError, UnknownDeviceError, UnknownGroupError, UnknownTemplateError } from './errors.js';

/** Longest CSR accepted, PEM characters. */
export const MAX_CSR_LENGTH = 16_384;
/** Most groups a device is onboarded into at once. */
export const MAX_ONBOARD_GROUPS = 10;

export const onboardBody = z
  .object({
    thingName: thingNameSchema,
    /** A registry policy (usually shared, with policy variables) attached to the device's certificate. */
    template: policyNameSchema,
    groups: z.array(thingGroupNameSchema).max(MAX_ONBOARD_GROUPS).default([]),
    attributes: attributesSchema.optional(),
    thingTypeName: thingNameSchema.optional(),
    /** The device's PKCS#10 request; without one iotdr makes the key pair and returns the key once. */
    csr: z.string().min(1).max(MAX_CSR_LENGTH).optional(),
  })
  .strict();
export type OnboardInput = z.infer<typeof onboardBody>;

export interface OnboardedDevice {
  thingName: string;
  template: string;
  groups: string[];
  certificateId: string;
  certificatePem: string;
  /** Only when iotdr made the key pair: shown this once, never stored. */
  privateKeyPem?: string;
}

/** The template and groups exist: checked before anything is written. */
export async function checkReferences(
  service: RegistryService,
  template: string,
  groups: readonly string[],
): Promise<void> {
  if (!(await exists(() => service.getPolicy(template)))) throw new UnknownTemplateError(template);
  const missing: string[] = [];
  for (const group of new Set(groups))
    if (!(await exists(() => service.getThingGroup(group)))) missing.push(group);
  if (missing.length > 0) throw new UnknownGroupError(missing);
}

/**
 * Onboards one device. Each step is a registry write of its own; when a later step fails, the
 * earlier ones are undone, so a failed onboarding leaves nothing behind (and the name can be
 * used again).
 */
export async function onboardDevice(service: RegistryService, input: OnboardInput): Promise<OnboardedDevice> {
  await checkReferences(service, input.template, input.groups);
  if (await exists(() => service.getThing(input.thingName))) throw new DeviceExistsError(input.thingName);
  const undo: Array<() => Promise<unknown>> = [];
  try {
    try {
      await service.putThing(input.thingName, {
        expectedVersion: 0,
        ...(input.attributes ? { attributes: input.attributes } : {}),
        ...(input.thingTypeName ? { thingTypeName: input.thingTypeName } : {}),
      });
    } catch (error) {
      // Someone else made it between the check and the write.
      if (error instanceof IotdrError && error.code === 'IOTDR_REGISTRY_VERSION_MISMATCH')
        throw new DeviceExistsError(input.thingName);
      throw error;
    }
    undo.push(() => service.deleteThing(input.thingName, { force: true }));
    const created = await service.createCertificate(input.csr ? { csr: input.csr } : {});
    const certificateId = created.certificate.certificateId;
    undo.push(() => service.deleteCertificate(certificateId, { force: true }));
    await service.attachPolicy(certificateId, input.template);
    await service.attachCertificate(input.thingName, certificateId);
    for (const group of new Set(input.groups)) await service.addThingToGroup(group, input.thingName);
    return {
      thingName: input.thingName,
      template: input.template,
      groups: [...new Set(input.groups)],
      certificateId,
      certificatePem: created.certificate.certificatePem,
      ...(created.privateKeyPem ? { privateKeyPem: created.privateKeyPem } : {}),
    };
  } catch (error) {
    for (const step of undo.reverse()) await step().catch(() => undefined);
    throw error;
  }
}

export interface DeviceCertificates {
  thingName: string;
  certificates: { certificateId: string; status: Certificate['status'] }[];
}

async function setStatus(
  service: RegistryService,
  thingName: string,
  status: 'ACTIVE' | 'INACTIVE',
): Promise<DeviceCertificates> {
  const ids = await certificatesOf(service, thingName);
  const certificates: DeviceCertificates['certificates'] = [];
  for (const id of ids) {
    const current = await service.getCertificate(id);
    // A revoked certificate stays revoked: resuming must not bring back a compromised key.
    if (current.status === 'REVOKED' || current.status === status) {
      certificates.push({ certificateId: id, status: current.status });
      continue;
    }
    const updated = await service.updateCertificateStatus(id, { status });
    certificates.push({ certificateId: id, status: updated.status });
  }
  return { thingName, certificates };
}

/** Every certificate of the device INACTIVE: connects refused, live sessions closed in every region. */
export function suspendDevice(service: RegistryService, thingName: string): Promise<DeviceCertificates> {
  return setStatus(service, thingName, 'INACTIVE');
}

/** Every INACTIVE certificate of the device ACTIVE again (REVOKED ones stay revoked). */
export function resumeDevice(service: RegistryService, thingName: string): Promise<DeviceCertificates> {
  return setStatus(service, thingName, 'ACTIVE');
}

export interface Decommissioned {
  thingName: string;
  /** Certificates deleted (attached to no other thing). */
  certificates: string[];
  /** Certificates kept because another thing uses them too. */
  sharedCertificates: string[];
  groups: string[];
  shadow: boolean;
  deviceToken: boolean;
  /** Commands of the device removed. */
  commands: number;
}

/**
 * Removes what the device owned: its certificates (with their policy attachments) unless another
 * thing uses them, its group memberships, shadow, broker token and commands, then the thing.
 * Policies are definitions shared by devices (templates) and are kept; so are groups.
 */
export async function decommissionDevice(
  service: RegistryService,
  thingName: string,
): Promise<Decommissioned> {
  const ids = await certificatesOf(service, thingName);
  const groups = await service.listThingGroupsOf(thingName);
  const result: Decommissioned = {
    thingName,
    certificates: [],
    sharedCertificates: [],
    groups,
    shadow: false,
    deviceToken: false,
    commands: 0,
  };
  for (const id of ids) {
    const owners = await service.listCertificateThings(id);
    await service.detachCertificate(thingName, id);
    if (owners.some((t) => t !== thingName)) {
      result.sharedCertificates.push(id);
      continue;
    }
    // INACTIVE first: the sessions it authenticates close even if the delete below fails.
    await service.updateCertificateStatus(id, { status: 'INACTIVE' }).catch(() => undefined);
    await service.deleteCertificate(id, { force: true });
    result.certificates.push(id);
  }
  for (const group of groups) await service.removeThingFromGroup(group, thingName);
  result.shadow = await exists(() => service.deleteShadow(thingName));
  result.deviceToken = await exists(() => service.deleteDeviceToken(thingName));
  result.commands = await deleteCommandsOf(service, thingName);
  await service.deleteThing(thingName, { force: true });
  return result;
}

async function certificatesOf(service: RegistryService, thingName: string): Promise<string[]> {
  try {
    return await service.listThingCertificates(thingName);
  } catch (error) {
    if (error instanceof NotFoundError) throw new UnknownDeviceError(thingName);
    throw error;
  }
}

async function deleteCommandsOf(service: RegistryService, thingName: string): Promise<number> {
  let deleted = 0;
  for (;;) {
    const page = await service.store.list(CNC_KIND.command, { ref: thingName, limit: 500 });
    if (page.length === 0) return deleted;
    await service.transaction(async (tx) => {
      for (const record of page) {
        const current = await tx.get(CNC_KIND.command, record.key, { includeDeleted: true });
        await service.writeEntity(tx, CNC_KIND.command, record.key, record.ref, null, current);
      }
    });
    deleted += page.length;
  }
}

/** Whether `read` finds its entity (false on any 404 error: registry and shadow alike). */
async function exists(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return true;
  } catch (error) {
    if (error instanceof IotdrError && error.status === 404) return false;
    throw error;
  }
}

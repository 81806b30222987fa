import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type DeviceTokenDoc, KIND, type ThingDoc } from '../model.js';
import {
  isoNow,
  live,
  loadAny,
  put,
  remove,
  requireLive,
  type ServiceContext,
  writeTransaction,
} from './core.js';

/**
 * Device tokens: the MQTT password of one thing on the broker's token listener (username = thing
 * name), for devices that cannot hold a client certificate. One token per thing; a new one
 * replaces the old. `iotdrdev_<43 base64url>` carries 256 random bits, so a fast hash is enough,
 * and only that hash is stored: the token is shown once. Tokens are registry entities, so they
 * work in every region the registry reaches.
 */
const DEVICE_TOKEN_PATTERN = /^iotdrdev_[A-Za-z0-9_-]{43}$/;

export type DeviceTokenInfo = Omit<DeviceTokenDoc, 'secretHash'> & { version: number };

export interface IssuedDeviceToken {
  token: string;
  info: DeviceTokenInfo;
}

export function hashDeviceToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function info(doc: DeviceTokenDoc, version: number): DeviceTokenInfo {
  const { secretHash: _secret, ...rest } = doc;
  return { ...rest, policyNames: [...rest.policyNames], version };
}

/** Issues (or replaces) the token of a thing; the thing and every policy must exist. */
export async function createDeviceToken(
  ctx: ServiceContext,
  thingName: string,
  policyNames: readonly string[],
): Promise<IssuedDeviceToken> {
  const token = `iotdrdev_${randomBytes(32).toString('base64url')}`;
  return writeTransaction(ctx, async (tx) => {
    await requireLive(tx, KIND.thing, thingName);
    for (const policy of policyNames) await requireLive(tx, KIND.policy, policy);
    const previous = await loadAny(tx, KIND.deviceToken, thingName);
    const doc: DeviceTokenDoc = {
      thingName,
      secretHash: hashDeviceToken(token),
      policyNames: [...policyNames],
      createdAt: isoNow(ctx),
    };
    const version = await put(ctx, tx, KIND.deviceToken, thingName, null, { ...doc }, previous);
    return { token, info: info(doc, version) };
  });
}

export async function getDeviceToken(ctx: ServiceContext, thingName: string): Promise<DeviceTokenInfo> {
  const record = await requireLive(ctx.store, KIND.deviceToken, thingName);
  return info(record.doc as unknown as DeviceTokenDoc, record.version);
}

export async function deleteDeviceToken(ctx: ServiceContext, thingName: string): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    await remove(ctx, tx, await requireLive(tx, KIND.deviceToken, thingName));
  });
}

/**
 * The token's policies when `token` is the thing's current token, undefined otherwise. A token
 * older than its thing belongs to a deleted thing of the same name and is refused, so re-creating
 * a thing never revives a token nobody meant to give it.
 */
export async function verifyDeviceToken(
  ctx: ServiceContext,
  thingName: string,
  token: string,
): Promise<DeviceTokenInfo | undefined> {
  if (!DEVICE_TOKEN_PATTERN.test(token)) return undefined;
  const [record, thing] = await Promise.all([
    ctx.store.get(KIND.deviceToken, thingName),
    ctx.store.get(KIND.thing, thingName),
  ]);
  if (!live(record) || !live(thing)) return undefined;
  const doc = record.doc as unknown as DeviceTokenDoc;
  const expected = Buffer.from(doc.secretHash, 'hex');
  const actual = Buffer.from(hashDeviceToken(token), 'hex');
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
  if (Date.parse(doc.createdAt) < Date.parse((thing.doc as unknown as ThingDoc).createdAt)) return undefined;
  return info(doc, record.version);
}

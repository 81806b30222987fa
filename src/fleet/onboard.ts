/**
 * Onboards a simulated fleet the way an operator would, with the device policy template as the
 * fleet's policy: certificate devices in one bulk onboarding job through command and control (keys
 * made by iotdr, fetched once); token devices as things with a broker token each, through the
 * management API. The credentials are kept in the state directory (mode 0600), so a fleet of the
 * same name and size starts again without onboarding.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEVICE_POLICY_TEMPLATE } from '../broker/index.js';
import { CNC_ROUTES } from '../commands/index.js';
import { writeFileAtomic } from '../common/index.js';
import type { ApiClient } from '../http/index.js';
import { REGISTRY_ROUTES } from '../registry/index.js';
import { onboardingFailed } from './errors.js';
import { ensurePolicy } from './policy.js';
import type { DeviceAuth, FleetDevice } from './types.js';

/** The fleet's policy: the device template (publish under devices/<thing>/, commands, shadows, notices). */
export const FLEET_TEMPLATE = 'iotdr-fleet';
/** Broker tokens asked for at once. */
const TOKEN_CONCURRENCY = 16;

export interface OnboardFleetOptions {
  /** Command and control (`api.<zone>`), and a region's API (policies, device tokens): admin token. */
  cnc: ApiClient;
  api: ApiClient;
  count: number;
  /** Thing names are `<prefix>-00001`… */
  prefix: string;
  auth: DeviceAuth['type'];
  stateDir: string;
  onProgress?: (done: number, total: number, phase: 'onboarding' | 'tokens') => void;
}

interface Saved {
  prefix: string;
  auth: DeviceAuth['type'];
  devices: FleetDevice[];
}

export function fleetCredentialsPath(stateDir: string, prefix: string): string {
  return join(stateDir, 'fleet', `${prefix}.credentials.json`);
}

export function thingNameOf(prefix: string, i: number): string {
  return `${prefix}-${String(i + 1).padStart(5, '0')}`;
}

export async function onboardFleet(options: OnboardFleetOptions): Promise<FleetDevice[]> {
  // First, kept credentials or not: the devices of this release act under this release's template.
  await ensurePolicy(options.api, FLEET_TEMPLATE, DEVICE_POLICY_TEMPLATE());
  const path = fleetCredentialsPath(options.stateDir, options.prefix);
  const saved = await readFile(path, 'utf8').then(
    (text) => JSON.parse(text) as Saved,
    () => undefined,
  );
  if (saved && saved.auth === options.auth && saved.devices.length >= options.count) {
    // Kept credentials are only good while the registry still knows the devices.
    const last = saved.devices[options.count - 1]?.thingName;
    const known =
      last !== undefined &&
      (await options.api.request(REGISTRY_ROUTES.getThing, { params: { name: last } }).then(
        () => true,
        () => false,
      ));
    if (known) return saved.devices.slice(0, options.count);
  }

  const names = Array.from({ length: options.count }, (_, i) => thingNameOf(options.prefix, i));
  const devices =
    options.auth === 'mtls' ? await withCertificates(options, names) : await withTokens(options, names);
  const record: Saved = { prefix: options.prefix, auth: options.auth, devices };
  await writeFileAtomic(path, JSON.stringify(record), { mode: 0o600 });
  return devices;
}

/** One bulk onboarding job through command and control: things, keys and certificates, the policy. */
async function withCertificates(options: OnboardFleetOptions, names: string[]): Promise<FleetDevice[]> {
  const job = await options.cnc.request(CNC_ROUTES.submitJob, {
    body: { template: FLEET_TEMPLATE, devices: names.map((thingName) => ({ thingName })) },
  });
  let state = job;
  while (state.state === 'running') {
    await new Promise((r) => setTimeout(r, 250));
    state = await options.cnc.request(CNC_ROUTES.job, { params: { id: job.jobId } });
    options.onProgress?.(state.done, state.total, 'onboarding');
  }
  if (state.state !== 'succeeded') throw onboardingFailed(`onboarding job ${job.jobId} ended ${state.state}`);
  const { keys } = await options.cnc.request(CNC_ROUTES.takeKeys, { params: { id: job.jobId } });
  return names.map((thingName) => {
    const k = keys[thingName];
    if (!k) throw onboardingFailed(`no key for ${thingName}`);
    return { thingName, auth: { type: 'mtls', certPem: k.certificatePem, keyPem: k.privateKeyPem } };
  });
}

/**
 * Token devices need no certificate: each thing is registered through the management API and given
 * a broker token bound to the fleet's policy, several at a time.
 */
async function withTokens(options: OnboardFleetOptions, names: string[]): Promise<FleetDevice[]> {
  const tokens = new Map<string, string>();
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: TOKEN_CONCURRENCY }, async () => {
      for (let i = next++; i < names.length; i = next++) {
        const thingName = names[i] as string;
        await options.api.request(REGISTRY_ROUTES.putThing, {
          params: { name: thingName },
          body: { attributes: { fleet: 'simulated' } },
        });
        const made = await options.api.request(REGISTRY_ROUTES.createDeviceToken, {
          params: { name: thingName },
          body: { policyNames: [FLEET_TEMPLATE] },
        });
        tokens.set(thingName, made.token);
        if (++done % 100 === 0 || done === names.length) options.onProgress?.(done, names.length, 'tokens');
      }
    }),
  );
  return names.map((thingName) => ({
    thingName,
    auth: { type: 'token', token: tokens.get(thingName) ?? '' },
  }));
}

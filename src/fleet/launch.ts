/**
 * A simulated fleet on a running platform: the admin token and CA read from the state directory,
 * the devices onboarded through the command and control of the active region (or the one named),
 * and started against the fleet's DNS, as `iotdr fleet`, the demo fleet of `iotdr up` and the
 * drill all do.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { baseUrl } from '../common/index.js';
import type { IotdrConfig, RegionConfig } from '../config/index.js';
import { adminTokenPath, apiUrlOf, caCertPath, controlNodesOf, nameServersOf } from '../config/index.js';
import { ControlClient, FAILOVER_ROUTES } from '../failover/index.js';
import { ApiClient } from '../http/index.js';
import { Fleet } from './fleet.js';
import { onboardFleet } from './onboard.js';
import type { DeviceAuth, FleetDevice } from './types.js';

/** Devices a launched fleet powers on per second. */
export const FLEET_START_PER_SECOND = 100;

export interface LaunchFleetOptions {
  config: IotdrConfig;
  stateDir: string;
  count: number;
  /** Thing names are `<prefix>-00001`…; credentials are kept per prefix. */
  prefix: string;
  auth: DeviceAuth['type'];
  /** Messages per second of the whole fleet. Default: one per device per second. */
  ratePerSecond?: number;
  /** Where to onboard. Default: the region control says is active, else the primary. */
  region?: RegionConfig;
  onProgress?: (done: number, total: number, phase: 'onboarding' | 'tokens') => void;
  onError?: (message: string) => void;
}

export interface LaunchedFleet {
  fleet: Fleet;
  devices: FleetDevice[];
  /** The region the devices were onboarded in. */
  region: RegionConfig;
}

/** The admin token and the CA certificate of a platform's state directory. */
export async function platformCredentials(stateDir: string): Promise<{ token: string; caPem: string }> {
  const token = (await readFile(adminTokenPath(stateDir), 'utf8')).trim();
  const caPem = await readFile(caCertPath(stateDir), 'utf8');
  return { token, caPem };
}

/** A region's API and its command-and-control API, with the admin token. */
export function regionApis(
  config: IotdrConfig,
  region: RegionConfig,
  token: string,
  caPem: string,
): { api: ApiClient; cnc: ApiClient } {
  const scheme = region.cnc.tls ? 'https' : 'http';
  return {
    api: new ApiClient(region.name, apiUrlOf(config, region), token, caPem),
    cnc: new ApiClient(`${region.name} cnc`, baseUrl(region.address, region.cnc.port, scheme), token, caPem),
  };
}

/** The control API at every control node, with the admin token: a node that is down is passed over. */
export function controlApi(config: IotdrConfig, token: string, caPem: string): ControlClient {
  return new ControlClient(
    controlNodesOf(config).map((node) => ({ name: node.name, url: node.url, trust: caPem })),
    token,
  );
}

/** The region control names active (any control node that answers); the primary when none does. */
export async function activeRegion(config: IotdrConfig, token: string, caPem: string): Promise<RegionConfig> {
  const primary = [...config.regions].sort((a, b) => a.priority - b.priority)[0] as RegionConfig;
  try {
    const control = controlApi(config, token, caPem);
    const state = await control.request(FAILOVER_ROUTES.state);
    return config.regions.find((r) => r.name === state.activeRegion) ?? primary;
  } catch {
    return primary;
  }
}

/** Whether every region is on this machine's loopback: devices then come from loopback addresses of their own. */
export function onLoopback(config: IotdrConfig): boolean {
  return config.regions.every((r) => r.address.startsWith('127.'));
}

export async function launchFleet(options: LaunchFleetOptions): Promise<LaunchedFleet> {
  const { config, stateDir } = options;
  const { token, caPem } = await platformCredentials(stateDir);
  const region = options.region ?? (await activeRegion(config, token, caPem));
  const { api, cnc } = regionApis(config, region, token, caPem);
  const devices = await onboardFleet({
    cnc,
    api,
    count: options.count,
    prefix: options.prefix,
    auth: options.auth,
    stateDir,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const fleet = await Fleet.start({
    devices,
    zone: config.zone,
    caPem,
    // Every control node's name server, then the other name servers: a device asks the next when one is down.
    dnsServers: nameServersOf(config),
    // The same port in every region: the name moves, the port does not.
    port: options.auth === 'mtls' ? region.mqtt.port : region.mqtt.tokenPort,
    ...(options.ratePerSecond === undefined ? {} : { ratePerSecond: options.ratePerSecond }),
    queueDir: join(stateDir, 'fleet', 'queues', options.prefix),
    ...(options.onError ? { onError: options.onError } : {}),
    // Everything on this machine: each device from its own loopback address, as in the field.
    spreadSources: onLoopback(config),
    regionsByAddress: Object.fromEntries(config.regions.map((r) => [r.address, r.name])),
    startPerSecond: FLEET_START_PER_SECOND,
  });
  return { fleet, devices, region };
}

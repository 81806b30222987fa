/**
 * The configuration a drill's platform runs on: the user's (or the embedded defaults) with what the
 * drill needs added — the brokers' token listener for token devices, and a health check of
 * component `app` watching each region's demo application service when none is configured, so
 * `app-unhealthy` is seen the way a failing application would be. Written into the drill's state
 * directory when anything was added; the user's file is never changed.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { baseUrl } from '../common/index.js';
import { embeddedNats, type IotdrConfig, linkScheme, parseConfig } from '../config/index.js';
import { embeddedControlPlane } from '../control/index.js';
import { APP_TARGET_PATH } from '../faults/index.js';
import { ADDRESS_PLACEHOLDER } from '../health/index.js';
import { drillConfigError } from './errors.js';

export interface DrillConfig {
  config: IotdrConfig;
  /** The file the platform's processes read; undefined: the embedded defaults. */
  configFile?: string;
  /** One line per thing the drill added. */
  added: string[];
}

export async function drillConfig(options: {
  /** The user's configuration file, if any. */
  sourceFile?: string;
  auth: 'mtls' | 'token';
  stateDir: string;
  /** Run the control plane as this many nodes and etcd members on this machine (`embeddedControlPlane`). */
  controlNodes?: number;
  /** Keep every region's event bus in JetStream, on a NATS of this many servers per region (`embeddedNats`). */
  natsServers?: number;
}): Promise<DrillConfig> {
  const raw = ((options.sourceFile ? parse(await readFile(options.sourceFile, 'utf8')) : null) ??
    {}) as Record<string, unknown>;
  const given = parseConfig(raw);
  const added: string[] = [];
  if (options.auth === 'token' && !given.broker.tokenAuth) {
    raw.broker = { ...((raw.broker as object | undefined) ?? {}), tokenAuth: true };
    added.push('broker.tokenAuth: true (token devices)');
  }
  if (options.controlNodes !== undefined) {
    if (given.control.nodes.length > 0)
      throw drillConfigError(
        `--control-nodes: the configuration already lists ${given.control.nodes.length} control nodes; drop the flag to use them`,
      );
    const plane = embeddedControlPlane(options.controlNodes);
    const control = (raw.control as Record<string, unknown> | undefined) ?? {};
    const etcd = (control.etcd as Record<string, unknown> | undefined) ?? {};
    raw.control = { ...control, nodes: plane.nodes, etcd: { ...etcd, members: plane.etcd.members } };
    added.push(
      `control.nodes: ${plane.nodes.map((n) => `${n.name} (${n.address})`).join(', ')}; etcd members ${plane.etcd.members.map((m) => m.address).join(', ')}`,
    );
  }
  if (options.natsServers !== undefined) {
    if (given.events.engine === 'jetstream')
      throw drillConfigError(
        '--events jetstream: the configuration keeps its events in JetStream already; drop the flag to use its NATS',
      );
    const count = options.natsServers;
    raw.events = { ...((raw.events as object | undefined) ?? {}), engine: 'jetstream' };
    const regions = Array.isArray(raw.regions)
      ? (raw.regions as Record<string, unknown>[])
      : given.regions.map((r) => ({ ...r }));
    raw.regions = regions.map((region, i) => ({
      ...region,
      nats: region.nats ?? embeddedNats(given.regions[i] ?? { address: String(region.address) }, count),
    }));
    added.push(`events.engine: jetstream, ${count} NATS server${count === 1 ? '' : 's'} per region`);
  }
  const ports = new Set(given.regions.map((r) => r.api.port));
  const [port] = ports;
  if (!given.health.checks.some((c) => c.component === 'app') && ports.size === 1 && port !== undefined) {
    const health = (raw.health as Record<string, unknown> | undefined) ?? {};
    // On the region's API, so over HTTPS unless the links are plain.
    const url = `${baseUrl(ADDRESS_PLACEHOLDER, port, linkScheme(given))}${APP_TARGET_PATH}`;
    raw.health = {
      ...health,
      checks: [
        ...((health.checks as unknown[] | undefined) ?? []),
        { name: 'drill-app', component: 'app', url },
      ],
    };
    added.push(`health check drill-app (component app): ${url}`);
  }
  if (added.length === 0) {
    return { config: given, ...(options.sourceFile ? { configFile: options.sourceFile } : {}), added };
  }
  const configFile = join(options.stateDir, 'drill-config.yaml');
  // JSON is YAML: the children read it like any configuration file.
  await writeFile(configFile, `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 });
  return { config: parseConfig(raw), configFile, added };
}

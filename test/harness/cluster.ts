import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { createLogger, waitUntil } from '../../src/common/index.js';
import { apiUrlOf, type IotdrConfig, parseConfig } from '../../src/config/index.js';
import { type RunningRegion, startRegion } from '../../src/processes/index.js';
import { fetch } from './https.js';
import { freePort } from './process.js';

export type Engine = { engine: 'sqlite' } | { engine: 'postgres'; url: string };

export interface ClusterRegion {
  name: string;
  url: string;
  running: RunningRegion | undefined;
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface Cluster {
  stateDir: string;
  config: IotdrConfig;
  configYaml: Record<string, unknown>;
  adminToken: string;
  regions: Record<string, ClusterRegion>;
  close(): Promise<void>;
}

let schemas = 0;

/**
 * Real regions in this process, each with its own store and HTTP API on a free port, replicating
 * to each other over HTTP from one state directory (one CA, one admin and one replicator token).
 * `autostart` lists the regions started now; the others can be started later (`region.start()`).
 */
export async function startCluster(
  names: string[],
  engine: Engine,
  options: {
    autostart?: string[];
    replication?: Record<string, unknown>;
    /** More top-level configuration (rules, health, broker…). */
    config?: Record<string, unknown>;
    /** Each region's address (default 127.0.0.1 for all): distinct loopback addresses let DNS answers differ. */
    addresses?: string[];
    /** The command-and-control port of every region (default 0: a free one each); with distinct addresses, one port lets `api.<zone>` follow a failover. */
    cncPort?: number;
    /** Serve command and control over HTTPS. */
    cncTls?: boolean;
    /** A state directory made already (its CA signs an etcd cluster, say); removed on close like a fresh one. */
    stateDir?: string;
    /** More configuration of one region, by name (its NATS, say). */
    regionConfig?: Record<string, Record<string, unknown>>;
  } = {},
): Promise<Cluster> {
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'iotdr-cluster-')));
  const run = `${process.pid}_${++schemas}`;
  const regionsYaml = [];
  for (const [i, name] of names.entries()) {
    regionsYaml.push({
      name,
      priority: i + 1,
      address: options.addresses?.[i] ?? '127.0.0.1',
      api: { port: await freePort() },
      cnc: { port: options.cncPort ?? 0, tls: options.cncTls ?? false },
      mqtt: { port: 0 },
      store:
        engine.engine === 'sqlite'
          ? { engine: 'sqlite' }
          : { engine: 'postgres', url: engine.url, schema: `r${run}_${name.replace(/-/g, '_')}` },
      ...options.regionConfig?.[name],
    });
  }
  const configYaml = {
    logging: { level: 'silent' },
    regions: regionsYaml,
    replication: { waitMs: 500, retryBaseMs: 20, retryMaxMs: 250, ...options.replication },
    // No analytics runs unless a test starts one; then it says so in its own `analytics` section.
    analytics: { regionCheck: false },
    ...options.config,
  };
  const config = parseConfig(configYaml);
  const logger = createLogger({ level: 'silent' });
  const regions: Record<string, ClusterRegion> = {};
  let adminToken = '';
  for (const r of config.regions) {
    const url = apiUrlOf(config, r);
    const region: ClusterRegion = {
      name: r.name,
      url,
      running: undefined,
      async call(method, path, body, token) {
        const res = await fetch(`${url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token ?? adminToken}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const text = await res.text();
        return { status: res.status, body: text.length > 0 ? JSON.parse(text) : undefined };
      },
      async start() {
        if (region.running) return;
        region.running = await startRegion({ config, stateDir, name: r.name, logger });
        adminToken ||= (await readFile(join(stateDir, 'secrets', 'admin.token'), 'utf8')).trim();
      },
      async stop() {
        await region.running?.stop();
        region.running = undefined;
      },
    };
    regions[r.name] = region;
  }
  for (const name of options.autostart ?? names) await regions[name]?.start();
  return {
    stateDir,
    config,
    configYaml,
    get adminToken() {
      return adminToken;
    },
    regions,
    async close() {
      for (const region of Object.values(regions)) await region.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** The cluster's configuration as it is now, as a file for the command line: `<state>/iotdr.yaml`. */
export async function clusterConfigFile(cluster: Cluster): Promise<string> {
  const configPath = join(cluster.stateDir, 'iotdr.yaml');
  // JSON is YAML.
  await writeFile(configPath, JSON.stringify(cluster.configYaml));
  return configPath;
}

/** Runs `iotdr ARGS --config FILE` in this process, with the cluster's configuration and state directory. */
export async function clusterCli(
  cluster: Cluster,
  args: readonly string[],
): Promise<{ code: number; out: string; err: string }> {
  const configPath = await clusterConfigFile(cluster);
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env: { IOTDR_HOME: cluster.stateDir },
    cwd: cluster.stateDir,
  };
  const code = await main([...args, '--config', configPath], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/**
 * Polls `check` every 50 ms until it returns true or the time runs out (then throws, saying `what`
 * and the last error the check threw; a throw is "not yet").
 */
export function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  return waitUntil(check, { timeoutMs, what, intervalMs: 50 });
}

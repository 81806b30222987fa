/**
 * The ways iotdr's broker is measured, each a real region (`iotdr region`, iotdr.ts) on its own
 * copy of the bench's state directory (same CA, devices and tokens), all running side by side:
 *
 * - `single`: one process, no Redis (today's default; `--iotdr broker` runs server.ts instead);
 * - `redis`: `broker.workers: 1` with `regions[].redis`: one process whose messages, sessions and
 *   hub/node link go through Redis (what Redis itself costs);
 * - `workers`: `broker.workers: N` with Redis: N worker processes sharing the MQTT ports
 *   (node:cluster), the region's process as their hub.
 *
 * Each Redis setup gets its own throwaway redis-server (test/harness/redis.ts): regions never share
 * one. A RedisProbe reads what Redis holds and does (INFO) over a connection of its own.
 */
import { cp, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Redis as RedisClient } from 'ioredis';
import { adminTokenPath } from '../../src/config/index.js';
import { startRedis } from '../../test/harness/redis.js';
import type { Cleanup } from '../registry/common.js';
import { type IotdrSetup, type RunningIotdr, startRegion, startStandalone } from './iotdr.js';

const require = createRequire(import.meta.url);
// CommonJS package without an ESM entry point (as src/broker/cluster.ts loads it).
const { Redis } = require('ioredis') as typeof import('ioredis');

export const SETUP_NAMES = ['single', 'redis', 'workers'] as const;
export type SetupName = (typeof SETUP_NAMES)[number];

export interface Setup {
  name: SetupName;
  /** For the report, e.g. "iotdr, 2 workers + Redis". */
  label: string;
  workers: number;
  redis: boolean;
}

export function setupOf(name: SetupName, workers: number): Setup {
  switch (name) {
    case 'single':
      return { name, label: 'iotdr, 1 process', workers: 1, redis: false };
    case 'redis':
      return { name, label: 'iotdr, 1 process + Redis', workers: 1, redis: true };
    case 'workers':
      return { name, label: `iotdr, ${workers} workers + Redis`, workers, redis: true };
  }
}

/** What Redis holds and has done, from INFO. */
export class RedisProbe {
  readonly #client: RedisClient;
  readonly pid: number;
  readonly version: string;

  private constructor(client: RedisClient, pid: number, version: string) {
    this.#client = client;
    this.pid = pid;
    this.version = version;
  }

  static async connect(url: string): Promise<RedisProbe> {
    const client = new Redis(url, { connectionName: 'iotdr-bench-probe', maxRetriesPerRequest: 1 });
    const server = fields(await client.info('server'));
    const pid = Number(server.get('process_id'));
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`Redis at ${url} named no process_id`);
    return new RedisProbe(client, pid, server.get('redis_version') ?? 'unknown');
  }

  /** Distinct channels (SUBSCRIBE) and patterns (PSUBSCRIBE) Redis holds over all its clients. */
  async pubsub(): Promise<{ channels: number; patterns: number }> {
    const stats = fields(await this.#client.info('stats'));
    return { channels: Number(stats.get('pubsub_channels')), patterns: Number(stats.get('pubsub_patterns')) };
  }

  /** Commands Redis ran so far and the µs it spent in them (its own commandstats): PUBLISH, and all. */
  async commands(): Promise<{ publish: CommandCount; all: CommandCount }> {
    const all: CommandCount = { calls: 0, usec: 0 };
    let publish: CommandCount = { calls: 0, usec: 0 };
    for (const [name, line] of fields(await this.#client.info('commandstats'))) {
      const stat = new Map(line.split(',').map((kv) => kv.split('=') as [string, string]));
      const count = { calls: Number(stat.get('calls') ?? 0), usec: Number(stat.get('usec') ?? 0) };
      // INFO itself is the probe's, not the broker's.
      if (name === 'cmdstat_info') continue;
      all.calls += count.calls;
      all.usec += count.usec;
      if (name === 'cmdstat_publish') publish = count;
    }
    return { publish, all };
  }

  close(): void {
    this.#client.disconnect();
  }
}

export interface CommandCount {
  calls: number;
  usec: number;
}

/** `key:value` lines of an INFO section. */
function fields(info: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of info.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return out;
}

export interface RunningSetup {
  setup: Setup;
  iotdr: RunningIotdr;
  redis?: RedisProbe;
  /** The broker node holding each of these clients' sessions (the region's /v1/connections). */
  placement(clientIds: readonly string[]): Promise<Map<string, string>>;
}

const PLACEMENT_WAIT_MS = 10_000;

/**
 * Starts one setup: copies `seedDir` (CA, registry with the bench's devices) to a directory of
 * its own, starts its Redis when it has one, then the region. Everything is stopped by `cleanup`.
 */
export async function startSetup(
  setup: Setup,
  opts: {
    seedDir: string;
    dir: string;
    region: string;
    zone: string;
    cleanup: Cleanup;
    mode: 'auto' | 'region' | 'broker';
    log: (line: string) => void;
  },
): Promise<RunningSetup> {
  await cp(opts.seedDir, opts.dir, { recursive: true });
  const base: IotdrSetup = {
    stateDir: opts.dir,
    dbPath: join(opts.dir, 'registry.db'),
    region: opts.region,
    zone: opts.zone,
    cleanup: opts.cleanup,
  };
  let redis: RedisProbe | undefined;
  if (setup.redis) {
    const server = await startRedis();
    opts.cleanup.defer(`stop redis-server on port ${server.port}`, () => server.stop());
    redis = await RedisProbe.connect(server.url);
    const probe = redis;
    opts.cleanup.defer('close the Redis probe', () => probe.close());
    base.redisUrl = server.url;
    base.workers = setup.workers;
  }
  opts.log(`${setup.label}: starting iotdr region${redis ? ` on Redis (pid ${redis.pid})` : ''}`);
  let iotdr: RunningIotdr | undefined;
  if (opts.mode !== 'broker' || setup.redis) {
    iotdr = await startRegion(base);
    if (iotdr === undefined && (opts.mode === 'region' || setup.redis))
      throw new Error('iotdr region runs no broker (its /livez names no mqtt URL)');
  }
  if (iotdr === undefined) {
    opts.log(`${setup.label}: running createBroker in a child process (bench/broker/server.ts)`);
    iotdr = await startStandalone(base);
  }
  const api = iotdr.apiUrl;
  const placement = async (clientIds: readonly string[]): Promise<Map<string, string>> => {
    if (api === undefined) return new Map();
    const token = (await readFile(adminTokenPath(opts.dir), 'utf8')).trim();
    const deadline = Date.now() + PLACEMENT_WAIT_MS;
    for (;;) {
      const res = await fetch(`${api}/v1/connections`, { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`GET /v1/connections: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { items: Array<{ clientId: string; node?: string }> };
      const nodes = new Map(body.items.map((s) => [s.clientId, s.node ?? 'main']));
      // The hub hears of sessions on the link a moment after their CONNACK.
      if (clientIds.every((c) => nodes.has(c)) || Date.now() > deadline) return nodes;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { setup, iotdr, ...(redis === undefined ? {} : { redis }), placement };
}

/**
 * Where QoS1's clients landed: per node, its subscribers and publishers, and the share of
 * deliveries that crossed nodes (a publisher and a subscriber on different nodes).
 */
export function spread(
  nodes: ReadonlyMap<string, string>,
  publishers: readonly string[],
  subscribers: readonly string[],
): { text: string; crossing: number } {
  const at = (c: string) => nodes.get(c) ?? '?';
  const per = new Map<string, { pub: number; sub: number }>();
  for (const [list, key] of [
    [publishers, 'pub'],
    [subscribers, 'sub'],
  ] as const) {
    for (const c of list) {
      const n = per.get(at(c)) ?? { pub: 0, sub: 0 };
      n[key]++;
      per.set(at(c), n);
    }
  }
  let crossed = 0;
  for (const p of publishers) for (const s of subscribers) if (at(p) !== at(s)) crossed++;
  const text = [...per]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([node, n]) => `${node}: ${n.sub} sub, ${n.pub} pub`)
    .join('; ');
  return { text, crossing: crossed / (publishers.length * subscribers.length) };
}

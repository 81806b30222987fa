/**
 * What `iotdr config check` accepts, the processes accept. For every section, a configuration holds
 * each bounded field at the limits its component exports (the named constants the schema is built
 * from, which docs/configuration.md must state too) and both ends of every enum. It is parsed as
 * `config check` parses a file, then handed to what each process runs on it before it serves: a
 * region, control, analytics and a name server are started from it for real, the other region's
 * store is opened, the regions' Redis is checked as the broker checks it, a peer pulls from the
 * region with the configured page and wait, and the supervisor applies its restart policy.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ANALYTICS_LIMITS } from '../../src/analytics/index.js';
import { BROKER_LIMITS, checkRedisUrl } from '../../src/broker/index.js';
import {
  type Clock,
  ConfigError,
  LOG_LEVELS,
  PORT,
  type Range,
  type Timers,
} from '../../src/common/index.js';
import {
  FLEET_LIMITS,
  type IotdrConfig,
  parseConfig,
  parseConfigYaml,
  REGION_PRIORITY_MIN,
  replicatorTokenPath,
  SUPERVISION_LIMITS,
  SUPERVISION_RESTART_MODES,
} from '../../src/config/index.js';
import { CONTROL_LIMITS } from '../../src/control/index.js';
import { DNS_LIMITS, DNS_PROVIDERS } from '../../src/dns/index.js';
import { EVENT_ENGINES, EVENTS_LIMITS, NATS_LIMITS } from '../../src/events/index.js';
import { DISCONNECT_MODES, FAILBACK_MODES, FAILOVER_LIMITS } from '../../src/failover/index.js';
import { HEALTH_COMPONENTS, HEALTH_LIMITS, HTTP_CHECK_COMPONENTS } from '../../src/health/index.js';
import {
  openStore,
  type ProcessEvent,
  regionRedis,
  Supervisor,
  siteLinks,
  startAnalytics,
  startControl,
  startNameServer,
  startRegion,
} from '../../src/processes/index.js';
import {
  generateToken,
  SQLITE_SYNCHRONOUS_MODES,
  STORE_ENGINES,
  STORE_LIMITS,
} from '../../src/registry/index.js';
import { HttpChangeFeed, REPLICATION_LIMITS } from '../../src/replication/index.js';
import { RULES_LIMITS } from '../../src/rules/index.js';

type Edge = 'min' | 'max';

/**
 * A field's path in the configuration: dots between keys, `[]` for every item of a list. A path
 * reaches only fields the limits configuration below holds, so a list item without the field
 * (a SQLite store has no poolSize) is left alone.
 */
interface Bound {
  path: string;
  range: Range;
  /** Items of the list get distinct values (min + i, max − i): region priorities are unique. */
  distinct?: boolean;
}

function boundsOf(prefix: string, limits: Record<string, Range>): Bound[] {
  return Object.entries(limits).map(([key, range]) => ({ path: `${prefix}${key}`, range }));
}

/** Every bounded number of the configuration, from the constants each component exports. */
const BOUNDS: Bound[] = [
  ...boundsOf('', FLEET_LIMITS),
  ...boundsOf('dns.', DNS_LIMITS),
  ...boundsOf('control.', CONTROL_LIMITS),
  ...boundsOf('analytics.', ANALYTICS_LIMITS),
  {
    path: 'regions[].priority',
    range: { min: REGION_PRIORITY_MIN, max: Number.MAX_SAFE_INTEGER },
    distinct: true,
  },
  ...boundsOf('regions[].store.', STORE_LIMITS),
  ...boundsOf('regions[].nats.', NATS_LIMITS),
  ...boundsOf('replication.', REPLICATION_LIMITS),
  ...boundsOf('broker.', BROKER_LIMITS),
  ...boundsOf('events.', EVENTS_LIMITS),
  ...boundsOf('health.', HEALTH_LIMITS),
  ...boundsOf('rules[].', RULES_LIMITS),
  ...boundsOf('failover.', FAILOVER_LIMITS),
  ...boundsOf('supervision.', SUPERVISION_LIMITS),
];

/** Every port; 0 binds a free one, so the processes below run on the configured ports. */
const PORTS = [
  'dns.port',
  'dns.servers[].port',
  'dns.servers[].httpPort',
  'control.port',
  'analytics.port',
  'regions[].api.port',
  'regions[].cnc.port',
  'regions[].mqtt.port',
  'regions[].mqtt.tokenPort',
  'regions[].nats.servers[].clientPort',
  'regions[].nats.servers[].clusterPort',
];

/** Every enum: the min configuration takes the first value, the max configuration the last. */
const ENUMS: { path: string; values: readonly (string | number)[] }[] = [
  { path: 'logging.level', values: LOG_LEVELS },
  { path: 'dns.provider', values: DNS_PROVIDERS },
  { path: 'regions[].store.synchronous', values: SQLITE_SYNCHRONOUS_MODES },
  { path: 'events.engine', values: EVENT_ENGINES },
  { path: 'events.synchronous', values: SQLITE_SYNCHRONOUS_MODES },
  { path: 'health.checks[].component', values: HTTP_CHECK_COMPONENTS },
  { path: 'rules[].actions[].qos', values: [0, 1] },
  { path: 'failover.failback', values: FAILBACK_MODES },
  { path: 'failover.disconnectOnFailover', values: DISCONNECT_MODES },
  { path: 'supervision.restart', values: SUPERVISION_RESTART_MODES },
];

/**
 * A configuration with every optional part present, every bounded field, port and enum to be
 * filled (null). Region a runs (SQLite); region b is PostgreSQL, the other end of the engines.
 * broker.workers above 1 needs each region's own Redis, so the max configuration names one.
 */
function skeleton(edge: Edge): Record<string, unknown> {
  const max = edge === 'max';
  const redis = (db: number) =>
    max ? { redis: { url: `redis://127.0.0.1:6379/${db}`, passwordFile: 'redis.pass' } } : {};
  // As many servers as the most replicas take.
  const nats = {
    servers: Array.from({ length: NATS_LIMITS.replicas.max }, (_, i) => ({
      name: `nats-${i + 1}`,
      address: '127.0.0.1',
      clientPort: null,
      clusterPort: null,
    })),
    replicas: null,
  };
  return {
    zone: 'limits.test',
    names: { mqtt: 'mqtt', api: 'api' },
    logging: { level: null },
    api: { bodyLimit: null },
    // Plain links need every address on loopback, and the limits configuration's are.
    links: { mode: max ? 'plain-loopback' : 'mutual-tls', certificateDays: null, renewBeforeDays: null },
    dns: {
      address: '127.0.0.1',
      port: null,
      ttl: null,
      provider: null,
      extraNames: ['telemetry'],
      powerdns: { url: 'http://127.0.0.1:9', serverId: 'localhost', apiKeyFile: 'pdns.key' },
      servers: [{ name: 'ns2', address: '127.0.0.1', port: null, httpPort: null }],
    },
    control: { address: '127.0.0.1', port: null, etcd: { prefix: '/limits/', leaseTtlMs: null } },
    analytics: {
      address: '127.0.0.1',
      port: null,
      maxLagMs: null,
      sequenceField: 'seq',
      retentionSeconds: null,
      regionCheck: max,
    },
    regions: [
      {
        name: 'edge-a',
        priority: null,
        address: '127.0.0.1',
        api: { port: null },
        cnc: { port: null, tls: max },
        mqtt: { port: null, tokenPort: null },
        store: { engine: STORE_ENGINES[0], synchronous: null },
        ...redis(1),
        nats,
      },
      {
        name: 'edge-b',
        priority: null,
        address: '127.0.0.2',
        api: { port: null },
        cnc: { port: null, tls: max },
        mqtt: { port: null, tokenPort: null },
        store: {
          engine: STORE_ENGINES[STORE_ENGINES.length - 1],
          url: 'postgres://iotdr@127.0.0.1:5432/iotdr',
          passwordFile: 'pg.pass',
          poolSize: null,
          schema: 'edge_b',
        },
        ...redis(2),
        nats,
      },
    ],
    replication: {
      enabled: max,
      batchSize: null,
      waitMs: null,
      snapshotPageSize: null,
      retryBaseMs: null,
      retryMaxMs: null,
      ...(max ? { tokenFile: 'replicator.token' } : {}),
      tombstoneRetentionSeconds: null,
      changeLogRetentionSeconds: null,
      maintenanceIntervalSeconds: null,
    },
    broker: {
      tokenAuth: max,
      maxConnections: null,
      connectionsPerSecondPerAddress: null,
      maxPayloadBytes: null,
      maxTopicLength: null,
      maxTopicLevels: null,
      connectTimeoutMs: null,
      workers: null,
      tlsTickets: { rotateHours: null },
    },
    events: {
      engine: null,
      retentionSeconds: null,
      maxBytes: null,
      synchronous: null,
      duplicateWindowSeconds: null,
    },
    health: {
      timeoutMs: null,
      maxLagMs: null,
      maxLagChanges: null,
      critical: max ? [...HEALTH_COMPONENTS] : [HEALTH_COMPONENTS[0]],
      connectEveryMs: null,
      connectTimeoutMs: null,
      cacheMs: null,
      checks: [
        {
          name: 'orders',
          component: null,
          url: 'http://{address}:9/{region}/health',
          expectedStatus: null,
          bodyMatch: 'ok',
          timeoutMs: null,
        },
      ],
    },
    rules: [
      {
        name: 'hook',
        topicFilter: 'devices/+/telemetry',
        select: ['temperature'],
        actions: [
          { type: 'bus' },
          { type: 'republish', topic: 'hooked/telemetry', qos: null },
          {
            type: 'http',
            url: 'http://127.0.0.1:9/in',
            headers: { 'x-fleet': 'limits' },
            timeoutMs: null,
            maxAttempts: null,
          },
        ],
        enabled: true,
      },
    ],
    failover: {
      intervalMs: null,
      timeoutMs: null,
      giveUpMs: null,
      degradedBudgetMs: null,
      failureThreshold: null,
      recoveryThreshold: null,
      failback: null,
      stablePeriodMs: null,
      checkers: ['control', 'remote'],
      disconnectOnFailover: null,
      webhooks: [{ url: 'http://127.0.0.1:9/switch', headers: { 'x-fleet': 'limits' } }],
    },
    supervision: { restart: null, restartDelayMs: null, restartMaxDelayMs: null, stableMs: null },
  };
}

/** The places `path` names in `root` that hold the field: [object, key] pairs. */
function places(root: unknown, path: string): [Record<string, unknown>, string][] {
  let found: unknown[] = [root];
  const keys = path.split('.');
  for (const [i, part] of keys.entries()) {
    const list = part.endsWith('[]');
    const key = list ? part.slice(0, -2) : part;
    const holders = found.filter(
      (x): x is Record<string, unknown> => typeof x === 'object' && x !== null && Object.hasOwn(x, key),
    );
    if (i === keys.length - 1 && !list) return holders.map((h) => [h, key]);
    found = holders.flatMap((h) => (list ? (h[key] as unknown[]) : [h[key]]));
  }
  throw new Error(`${path} names a list, not a field`);
}

function fill(root: unknown, path: string, value: (i: number) => unknown): void {
  const at = places(root, path);
  expect(at.length, `the limits configuration has no ${path}`).toBeGreaterThan(0);
  at.forEach(([holder, key], i) => {
    holder[key] = value(i);
  });
}

const pick = (edge: Edge, range: Range) => (edge === 'min' ? range.min : range.max);
const end = <T>(edge: Edge, values: readonly T[]) => values[edge === 'min' ? 0 : values.length - 1] as T;

/** The limits configuration of one edge, as a user would write it. */
function limitsInput(edge: Edge): Record<string, unknown> {
  const input = skeleton(edge);
  for (const { path, range, distinct } of BOUNDS)
    fill(input, path, (i) => pick(edge, range) + (distinct ? (edge === 'min' ? i : -i) : 0));
  for (const path of PORTS) fill(input, path, () => PORT.min);
  for (const { path, values } of ENUMS) fill(input, path, () => end(edge, values));
  return input;
}

/** Every leaf of the parsed configuration, by path with `[]` for list items. */
function leaves(value: unknown, path = ''): [string, unknown][] {
  if (Array.isArray(value)) return value.flatMap((item) => leaves(item, `${path}[]`));
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).flatMap(([k, v]) => leaves(v, path === '' ? k : `${path}.${k}`));
  return [[path, value]];
}

/** Time that moves only when the test says so. */
class FakeTime implements Clock, Timers {
  #now = 0;
  #due: { at: number; callback: () => void }[] = [];
  now(): number {
    return this.#now;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const timer = { at: this.#now + ms, callback };
    this.#due.push(timer);
    return timer;
  }
  clearTimeout(handle: unknown): void {
    this.#due = this.#due.filter((t) => t !== handle);
  }
  /** Fires the next timer and lets what it started settle. */
  async next(): Promise<void> {
    const [first] = this.#due.sort((a, b) => a.at - b.at);
    if (!first) throw new Error('no timer is due');
    this.#due.shift();
    this.#now = first.at;
    first.callback();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** What the platform does with `supervision` when a process dies twice in a row. */
async function crashTwice(config: IotdrConfig): Promise<ProcessEvent[]> {
  const events: ProcessEvent[] = [];
  const time = new FakeTime();
  const supervisor = new Supervisor({
    policy: config.supervision,
    start: async () => {},
    onEvent: (event) => events.push(event),
    clock: time,
    timers: time,
  });
  supervisor.running('edge-a');
  supervisor.exited('edge-a', 1, null);
  if (config.supervision.restart === 'always') {
    await time.next();
    supervisor.exited('edge-a', 1, null);
  }
  supervisor.stop();
  return events;
}

/**
 * Hands the parsed configuration to every process it configures, as each does before it serves;
 * throws what a process refuses. Returns what the supervisor made of the restart policy.
 */
async function runProcesses(config: IotdrConfig, stateDir: string): Promise<ProcessEvent[]> {
  const stops: (() => Promise<void>)[] = [];
  try {
    // Each region's store as its region opens it (region b's PostgreSQL checks its options here).
    for (const region of config.regions) await (await openStore(region, stateDir)).close();
    // The Redis a region's broker processes share, as they read and check it.
    for (const region of config.regions) {
      const redis = await regionRedis(region, stateDir);
      if (redis !== undefined) expect(checkRedisUrl(redis.redis)).toBeUndefined();
    }
    const [first] = config.regions;
    if (first === undefined) throw new Error('no region');
    // broker.workers only says how many processes to fork on the region's Redis; none checks it at
    // start, and 256 forks have no place in a test. The region runs its broker in one process.
    // Likewise events.engine jetstream needs the region's NATS running, which its own tests start
    // (test/events/region-jetstream.test.ts): the region here keeps its bus in SQLite.
    const oneProcess: IotdrConfig = {
      ...config,
      broker: { ...config.broker, workers: 1 },
      events: { ...config.events, engine: 'sqlite' },
      regions: config.regions.map(({ redis: _, ...region }) => region),
    };
    const region = await startRegion({ config: oneProcess, stateDir, name: first.name });
    stops.push(() => region.stop());

    // A peer's replication link pulls with the configured page and long poll, and copies snapshot
    // pages of the configured size: the region's own routes must take both.
    // Over mutual TLS as a peer region would, with a site certificate; on plain links with the token.
    const peerLinks = await siteLinks(
      config,
      stateDir,
      { kind: 'region', name: 'peer-of-limits' },
      { addresses: [] },
    );
    stops.push(async () => peerLinks.close());
    const agent = peerLinks.agentFor({ kind: 'region', name: first.name });
    const feed = new HttpChangeFeed({
      baseUrl: region.apiUrl,
      peer: first.name,
      ...(agent === undefined
        ? { token: (await readFile(replicatorTokenPath(config, stateDir), 'utf8')).trim() }
        : { agent }),
    });
    const signal = AbortSignal.timeout(10_000);
    const r = config.replication;
    const page = await feed.pull({ after: 0, limit: r.batchSize, waitMs: r.waitMs, signal });
    expect(page.changes.length).toBeGreaterThan(0);
    await feed.snapshot({ limit: r.snapshotPageSize, signal });

    const control = await startControl({ config, stateDir });
    stops.push(() => control.stop());
    const analytics = await startAnalytics({
      config,
      stateDir,
      controlUrl: control.controlUrl,
      regionUrls: { [first.name]: region.apiUrl },
    });
    stops.push(() => analytics.stop());
    for (const server of config.dns.servers) {
      const nameServer = await startNameServer({
        config,
        stateDir,
        name: server.name,
        controlUrl: control.controlUrl,
      });
      stops.push(() => nameServer.stop());
    }
    return await crashTwice(config);
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

/** The secrets the limits configuration names, made as an operator would (mode 0600). */
async function provisionSecrets(stateDir: string): Promise<void> {
  for (const [file, contents] of [
    ['pdns.key', 'pdns-api-key'],
    ['pg.pass', 'pg-password'],
    ['redis.pass', 'redis-password'],
    ['replicator.token', generateToken().token],
  ] as const) {
    await writeFile(join(stateDir, file), `${contents}\n`);
    await chmod(join(stateDir, file), 0o600);
  }
}

/** docs/configuration.md's table row for a field: `[heading, first cell]` where the cell alone is ambiguous. */
const DOC_ROWS: Record<string, [string, string]> = {
  'regions[].store.poolSize': ['Registry store: PostgreSQL (production)', 'poolSize'],
  'regions[].store.synchronous': ['Registry store: SQLite (embedded, the default)', 'synchronous'],
  'health.checks[].component': ['Health', 'component'],
  'health.checks[].expectedStatus': ['Health', 'expectedStatus'],
  'health.checks[].timeoutMs': ['Health', 'timeoutMs'],
  'rules[].actions[].timeoutMs': ['Rules', 'actions'],
  'rules[].actions[].maxAttempts': ['Rules', 'actions'],
  'rules[].actions[].qos': ['Rules', 'actions'],
};

/** The doc's text with numbers as the constants print them: no thousands separators, "a–b" as "a to b". */
function plain(text: string): string {
  return text.replace(/(\d),(?=\d{3}\b)/g, '$1').replace(/(\d)\s*–\s*(\d)/g, '$1 to $2');
}

function docRow(doc: string, path: string): string {
  const [heading, cell] = DOC_ROWS[path] ?? [undefined, path];
  const sections = doc.split(/^### /m);
  const within = heading === undefined ? sections : sections.filter((s) => s.startsWith(`${heading}\n`));
  const rows = within.flatMap((s) => s.split('\n').filter((line) => line.startsWith(`| \`${cell}\` `)));
  expect(rows, `docs/configuration.md has one row for ${path}`).toHaveLength(1);
  return plain(rows[0] as string);
}

function stated(range: Range): string {
  return range.max === Number.MAX_SAFE_INTEGER ? `at least ${range.min}` : `${range.min} to ${range.max}`;
}

describe('a configuration at its limits', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-limits-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names a limit for every number it holds, and the configuration refuses one step past each', () => {
    const config = parseConfig(limitsInput('max'));
    const bounded = new Set([...BOUNDS.map((b) => b.path), ...PORTS, ...ENUMS.map((e) => e.path)]);
    const unbounded = leaves(config)
      .filter(([, value]) => typeof value === 'number')
      .map(([path]) => path)
      .filter((path) => !bounded.has(path));
    expect(unbounded, 'numbers without a named limit').toEqual([]);

    for (const { path, range } of [...BOUNDS, ...PORTS.map((path) => ({ path, range: PORT }))]) {
      for (const [edge, outside] of [
        ['min', range.min - 1],
        ['max', range.max + 1],
      ] as const) {
        const input = limitsInput(edge);
        fill(input, path, () => outside);
        let issues: string[] = [];
        try {
          parseConfig(input);
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          issues = (error as ConfigError).issues.map((i) => i.path.replace(/\.\d+(?=\.|$)/g, '[]'));
        }
        expect(issues, `${path} = ${outside}`).toContain(path);
      }
    }
  });

  it('states every limit and every choice in docs/configuration.md as the constants do', async () => {
    const doc = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    for (const { path, range } of BOUNDS) expect(docRow(doc, path), path).toContain(stated(range));
    for (const { path, values } of ENUMS)
      for (const value of values) expect(docRow(doc, path), path).toMatch(new RegExp(`\\b${value}\\b`));
    expect(plain(doc.replace(/\s+/g, ' '))).toContain(`Ports are integers from ${PORT.min} to ${PORT.max}`);
  });

  for (const edge of ['min', 'max'] as const) {
    it(`at every ${edge}imum, is accepted by config check and by every process it configures`, async () => {
      const stateDir = join(dir, edge);
      await mkdir(stateDir, { mode: 0o700 });
      await provisionSecrets(stateDir);

      // What `iotdr config check` runs on a file.
      const input = limitsInput(edge);
      const config = parseConfigYaml(stringify(input), `limits-${edge}.yaml`);
      for (const { path, range, distinct } of BOUNDS)
        for (const [holder, key] of places(config, path))
          if (!distinct) expect(holder[key], path).toBe(pick(edge, range));
      for (const { path, values } of ENUMS)
        for (const [holder, key] of places(config, path)) expect(holder[key], path).toBe(end(edge, values));

      const events = await runProcesses(config, stateDir);
      const s = config.supervision;
      expect(events.map((e) => (e.type === 'exited' ? e.restartInMs : e.type))).toEqual(
        s.restart === 'never'
          ? [null]
          : [s.restartDelayMs, 'restarted', Math.min(2 * s.restartDelayMs, s.restartMaxDelayMs)],
      );
    });
  }
});

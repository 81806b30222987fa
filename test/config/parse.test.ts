import { describe, expect, it } from 'vitest';
import { ConfigError, type FieldIssue } from '../../src/common/index.js';
import {
  type IotdrConfig,
  parseConfig,
  parseConfigYaml,
  primaryRegion,
  REDACTED,
  redactConfig,
  regionByName,
  sqlitePath,
} from '../../src/config/index.js';
import { parseRuleDefinitions } from '../../src/rules/index.js';

/** The issues parseConfig reports for `input`, as `path: message` lines; fails the test if it accepts it. */
function issuesOf(parse: () => unknown): FieldIssue[] {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

function messageAt(issues: FieldIssue[], path: string): string {
  const found = issues.filter((issue) => issue.path === path);
  expect(found, `issues: ${JSON.stringify(issues)}`).toHaveLength(1);
  return found[0]?.message ?? '';
}

const region = (name: string, priority: number, address: string) => ({ name, priority, address });

describe('parseConfig defaults', () => {
  it('gives the embedded two-region deployment when nothing is configured', () => {
    for (const input of [undefined, {}]) {
      expect(parseConfig(input)).toEqual({
        zone: 'iot.test',
        names: { mqtt: 'mqtt', api: 'api' },
        dns: { address: '127.0.0.10', port: 5353, ttl: 5, provider: 'builtin', extraNames: [], servers: [] },
        control: {
          address: '127.0.0.10',
          port: 8080,
          nodes: [],
          etcd: { members: [], prefix: '/iotdr/control/', leaseTtlMs: 5000 },
        },
        analytics: {
          address: '127.0.0.10',
          port: 8081,
          maxLagMs: 5000,
          sequenceField: 'seq',
          retentionSeconds: 604800,
          regionCheck: true,
        },
        logging: { level: 'info' },
        api: { bodyLimit: 1048576 },
        links: { mode: 'mutual-tls', certificateDays: 90, renewBeforeDays: 30 },
        regions: [
          {
            name: 'us-east',
            priority: 1,
            address: '127.0.0.11',
            api: { port: 8080 },
            cnc: { port: 8090, tls: false },
            mqtt: { port: 8883, tokenPort: 8884 },
            store: { engine: 'sqlite', synchronous: 'full' },
          },
          {
            name: 'us-west',
            priority: 2,
            address: '127.0.0.12',
            api: { port: 8080 },
            cnc: { port: 8090, tls: false },
            mqtt: { port: 8883, tokenPort: 8884 },
            store: { engine: 'sqlite', synchronous: 'full' },
          },
        ],
        replication: {
          enabled: true,
          batchSize: 1000,
          waitMs: 10000,
          snapshotPageSize: 1000,
          retryBaseMs: 100,
          retryMaxMs: 5000,
          tombstoneRetentionSeconds: 604800,
          changeLogRetentionSeconds: 604800,
          maintenanceIntervalSeconds: 3600,
        },
        broker: {
          tokenAuth: false,
          maxConnections: 'auto',
          connectionsPerSecondPerAddress: 100,
          maxPayloadBytes: 131072,
          maxTopicLength: 256,
          maxTopicLevels: 8,
          connectTimeoutMs: 10000,
          workers: 1,
          tlsTickets: { rotateHours: 24 },
        },
        events: {
          engine: 'sqlite',
          retentionSeconds: 604800,
          maxBytes: 1073741824,
          synchronous: 'full',
          duplicateWindowSeconds: 120,
        },
        health: {
          timeoutMs: 1000,
          maxLagMs: 5000,
          maxLagChanges: 10000,
          critical: ['broker', 'registry', 'events', 'app', 'cnc', 'analytics'],
          connectEveryMs: 30000,
          connectTimeoutMs: 5000,
          cacheMs: 500,
          checks: [],
        },
        rules: [
          {
            name: 'telemetry',
            topicFilter: 'devices/+/telemetry',
            actions: [{ type: 'bus' }],
            enabled: true,
          },
        ],
        ruleHttp: { allowedNetworks: [] },
        failover: {
          intervalMs: 1000,
          timeoutMs: 1000,
          degradedBudgetMs: 15000,
          failureThreshold: 3,
          recoveryThreshold: 5,
          failback: 'manual',
          stablePeriodMs: 60000,
          checkers: ['control'],
          disconnectOnFailover: 'when-reachable',
          webhooks: [],
        },
        supervision: { restart: 'always', restartDelayMs: 10000, restartMaxDelayMs: 300000, stableMs: 60000 },
      } satisfies IotdrConfig);
    }
  });

  it('merges a partial configuration with the defaults, field by field', () => {
    const config = parseConfig({
      zone: 'fleet.example.com',
      dns: { ttl: 30 },
      regions: [
        { ...region('eu-central', 1, '10.0.0.1'), mqtt: { port: 1883 } },
        { ...region('eu-west', 2, 'eu-west.internal'), store: { synchronous: 'normal' } },
      ],
    });
    expect(config.zone).toBe('fleet.example.com');
    expect(config.dns).toEqual({
      address: '127.0.0.10',
      port: 5353,
      ttl: 30,
      provider: 'builtin',
      extraNames: [],
      servers: [],
    });
    expect(config.names).toEqual({ mqtt: 'mqtt', api: 'api' });
    expect(config.regions).toEqual([
      {
        name: 'eu-central',
        priority: 1,
        address: '10.0.0.1',
        api: { port: 8080 },
        cnc: { port: 8090, tls: false },
        mqtt: { port: 1883, tokenPort: 8884 },
        store: { engine: 'sqlite', synchronous: 'full' },
      },
      {
        name: 'eu-west',
        priority: 2,
        address: 'eu-west.internal',
        api: { port: 8080 },
        cnc: { port: 8090, tls: false },
        mqtt: { port: 8883, tokenPort: 8884 },
        store: { engine: 'sqlite', synchronous: 'normal' },
      },
    ]);
  });

  it('fills the defaults of a postgres store', () => {
    const config = parseConfig({
      regions: [
        {
          ...region('us-east', 1, '10.0.0.1'),
          store: { engine: 'postgres', url: 'postgres://iotdr@db:5432/iotdr', passwordFile: 'secrets/pg' },
        },
      ],
    });
    expect(config.regions[0]?.store).toEqual({
      engine: 'postgres',
      url: 'postgres://iotdr@db:5432/iotdr',
      passwordFile: 'secrets/pg',
      poolSize: 10,
    });
  });

  it('returns a deeply frozen object', () => {
    const config = parseConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.regions)).toBe(true);
    expect(Object.isFrozen(config.regions[0]?.store)).toBe(true);
    expect(() => {
      (config.dns as { ttl: number }).ttl = 60;
    }).toThrow(TypeError);
    expect(() => (config.regions as unknown[]).push({})).toThrow(TypeError);
    // The defaults of the next parse are not affected.
    expect(parseConfig({}).dns.ttl).toBe(5);
  });
});

describe('parseConfig errors', () => {
  it.each([
    [{ zone: 'IoT.test' }, 'zone', 'lowercase DNS name'],
    [{ zone: 'iot.test.' }, 'zone', 'no trailing dot'],
    [{ names: { mqtt: 'a.b' } }, 'names.mqtt', 'DNS label'],
    [{ dns: { ttl: 0 } }, 'dns.ttl', 'expected an integer between 1 and 86400 (seconds), got 0'],
    [{ dns: { ttl: 2.5 } }, 'dns.ttl', 'expected an integer between 1 and 86400 (seconds), got 2.5'],
    [
      { dns: { port: '53' } },
      'dns.port',
      'expected an integer between 0 and 65535 (0 picks a free port), got "53"',
    ],
    [{ control: { address: '10.0.0.300' } }, 'control.address', 'expected an IPv4 or IPv6 address'],
    [{ control: 8080 }, 'control', 'expected a mapping with fields address, port, nodes, etcd, got 8080'],
    [
      { logging: { level: 'verbose' } },
      'logging.level',
      'expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    ],
    [
      { api: { bodyLimit: 100 } },
      'api.bodyLimit',
      'expected an integer between 1024 and 67108864 (bytes), got 100',
    ],
    [{ regions: [] }, 'regions', 'expected at least one region'],
    [{ regions: { 'us-east': {} } }, 'regions', 'expected a list of regions, got a mapping'],
    [{ regions: [region('US', 1, '10.0.0.1')] }, 'regions.0.name', 'expected a region name'],
    [
      { regions: [region('a', 0, '10.0.0.1')] },
      'regions.0.priority',
      'expected an integer of at least 1, got 0',
    ],
    [
      { regions: [{ name: 'a', priority: 1 }] },
      'regions.0.address',
      'required: expected an IPv4 or IPv6 address',
    ],
    [
      { regions: [{ ...region('a', 1, '10.0.0.1'), api: { port: 70000 } }] },
      'regions.0.api.port',
      'expected an integer between 0 and 65535',
    ],
    [
      { regions: [{ ...region('a', 1, '10.0.0.1'), store: { synchronous: 'off' } }] },
      'regions.0.store.synchronous',
      'expected one of full, normal, got "off"',
    ],
    [
      { regions: [{ ...region('a', 1, '10.0.0.1'), store: { engine: 'mysql' } }] },
      'regions.0.store.engine',
      'expected one of sqlite, postgres, got "mysql"',
    ],
    [
      { regions: [{ ...region('a', 1, '10.0.0.1'), store: { engine: 'postgres' } }] },
      'regions.0.store.url',
      'required: expected a postgres:// or postgresql:// URL',
    ],
    [
      { regions: [{ ...region('a', 1, '10.0.0.1'), store: { engine: 'postgres', url: 'mysql://db/x' } }] },
      'regions.0.store.url',
      'got a mysql: URL',
    ],
    [
      {
        regions: [
          {
            ...region('a', 1, '10.0.0.1'),
            store: { engine: 'postgres', url: 'postgres://db/x', poolSize: 101 },
          },
        ],
      },
      'regions.0.store.poolSize',
      'expected an integer between 1 and 100, got 101',
    ],
    [
      {
        regions: [
          {
            ...region('a', 1, '10.0.0.1'),
            store: { engine: 'postgres', url: 'postgres://db/x', schema: 'Bad-Name' },
          },
        ],
      },
      'regions.0.store.schema',
      'lowercase SQL identifier',
    ],
  ])('%j reports %s', (input, path, message) => {
    expect(
      messageAt(
        issuesOf(() => parseConfig(input)),
        path,
      ),
    ).toContain(message);
  });

  it('names each unknown field and lists the valid ones', () => {
    const issues = issuesOf(() =>
      parseConfig({
        zones: 'iot.test',
        dns: { ttl: 5, tll: 5 },
        regions: [{ ...region('a', 1, '10.0.0.1'), store: { engine: 'sqlite', url: 'x' } }],
      }),
    );
    expect(messageAt(issues, 'zones')).toBe(
      'unknown field; valid fields here are zone, names, dns, control, analytics, logging, api, links, regions, replication, broker, events, health, rules, ruleHttp, failover, supervision',
    );
    expect(messageAt(issues, 'dns.tll')).toBe(
      'unknown field; valid fields here are address, port, ttl, provider, extraNames, powerdns, servers',
    );
    expect(messageAt(issues, 'regions.0.store.url')).toBe(
      'unknown field; valid fields here are engine, path, synchronous',
    );
  });

  it('rejects a postgres URL carrying a password, without echoing it, and points at passwordFile', () => {
    for (const url of ['postgres://iotdr:hunter2@db/iotdr', 'postgresql://db/iotdr?password=hunter2']) {
      const issues = issuesOf(() =>
        parseConfig({ regions: [{ ...region('a', 1, '10.0.0.1'), store: { engine: 'postgres', url } }] }),
      );
      const message = messageAt(issues, 'regions.0.store.url');
      expect(message).toContain('passwordFile');
      expect(message).not.toContain('hunter2');
    }
  });

  it('reports cross-field conflicts at the path of the later field', () => {
    const issues = issuesOf(() =>
      parseConfig({
        names: { mqtt: 'mqtt', api: 'mqtt' },
        regions: [region('a', 1, '10.0.0.1'), region('a', 1, '10.0.0.2'), region('c', 3, '10.0.0.1')],
      }),
    );
    expect(messageAt(issues, 'names.api')).toContain('must differ from names.mqtt');
    expect(messageAt(issues, 'regions.1.name')).toBe('"a" is already the name of regions.0');
    expect(messageAt(issues, 'regions.1.priority')).toContain('priority 1 is already taken by regions.0');
    expect(messageAt(issues, 'regions.2.api.port')).toContain(
      '10.0.0.1:8080 is already used by regions.0.api.port',
    );
    expect(messageAt(issues, 'regions.2.mqtt.port')).toContain(
      '10.0.0.1:8883 is already used by regions.0.mqtt.port',
    );
    expect(messageAt(issues, 'regions.2.cnc.port')).toContain(
      '10.0.0.1:8090 is already used by regions.0.cnc.port',
    );
    expect(issues).toHaveLength(6);
  });

  it('takes broker.maxConnections as auto or a whole number of sessions', () => {
    expect(parseConfig({}).broker.maxConnections).toBe('auto');
    expect(parseConfig({ broker: { maxConnections: 'auto' } }).broker.maxConnections).toBe('auto');
    expect(parseConfig({ broker: { maxConnections: 50_000 } }).broker.maxConnections).toBe(50_000);
    for (const [value, got] of [
      [0, '0'],
      ['lots', '"lots"'],
      [1.5, '1.5'],
      [20_000_000, '20000000'],
      [null, 'null (an empty value)'],
    ] as const) {
      expect(
        messageAt(
          issuesOf(() => parseConfig({ broker: { maxConnections: value } })),
          'broker.maxConnections',
        ),
      ).toBe(
        `expected auto (derived from the machine's open files and memory) or an integer between 1 and 10000000 (sessions), got ${got}`,
      );
    }
  });

  it('runs broker workers only on a region Redis of its own, with no secret in its URL', () => {
    const east = { name: 'us-east', priority: 1, address: '127.0.0.11' };
    const west = { name: 'us-west', priority: 2, address: '127.0.0.12' };
    const config = parseConfig({
      broker: { workers: 4 },
      regions: [
        { ...east, redis: { url: 'redis://127.0.0.1:6379/0' } },
        { ...west, redis: { url: 'redis://127.0.0.1:6379/1', passwordFile: 'secrets/redis' } },
      ],
    });
    expect(config.broker.workers).toBe(4);
    expect(config.regions[1]?.redis).toEqual({
      url: 'redis://127.0.0.1:6379/1',
      passwordFile: 'secrets/redis',
    });
    expect(parseConfig({}).broker.workers).toBe(1);
    const issues = issuesOf(() =>
      parseConfig({
        broker: { workers: 2 },
        regions: [
          { ...east, redis: { url: 'redis://:hunter2@127.0.0.1:6379' } },
          { ...west },
          { name: 'eu-west', priority: 3, address: '127.0.0.13', redis: { url: 'http://127.0.0.1' } },
        ],
      }),
    );
    expect(messageAt(issues, 'regions.0.redis.url')).toContain('the URL carries a password');
    expect(JSON.stringify(issues)).not.toContain('hunter2');
    expect(messageAt(issues, 'regions.1.redis')).toContain('broker.workers is 2');
    expect(messageAt(issues, 'regions.2.redis.url')).toContain('expected a redis:// or rediss:// URL');
    const shared = issuesOf(() =>
      parseConfig({
        regions: [
          { ...east, redis: { url: 'redis://127.0.0.1:6379' } },
          { ...west, redis: { url: 'redis://127.0.0.1:6379/0' } },
        ],
      }),
    );
    expect(messageAt(shared, 'regions.1.redis.url')).toContain('the same Redis database as regions.0');
    expect(
      messageAt(
        issuesOf(() => parseConfig({ broker: { workers: 0 } })),
        'broker.workers',
      ),
    ).toContain('between 1 and 256');
  });

  it('checks the broker, health and rule sections field by field', () => {
    const issues = issuesOf(() =>
      parseConfig({
        broker: { tokenAuth: true, maxPayloadBytes: 0 },
        regions: [{ ...region('a', 1, '10.0.0.1'), mqtt: { port: 8883, tokenPort: 8080 } }],
        health: {
          critical: ['broker', 'dns'],
          checks: [
            { name: 'app', component: 'app', url: 'http://10.0.0.5/health' },
            { name: 'app', component: 'billing', url: 'ftp://x', bodyMatch: '(' },
          ],
        },
        rules: [
          { name: 'telemetry', topicFilter: 'devices/+/telemetry', actions: [{ type: 'bus' }] },
          { name: 'bad name', topicFilter: 'a/#/b', select: [], actions: [{ type: 'email' }] },
          { name: 'telemetry', topicFilter: 'x', actions: [] },
        ],
      }),
    );
    expect(messageAt(issues, 'broker.maxPayloadBytes')).toContain('between 1 and');
    expect(messageAt(issues, 'regions.0.mqtt.tokenPort')).toContain('already used by regions.0.api.port');
    expect(messageAt(issues, 'health.critical.1')).toContain('expected one of broker, registry');
    expect(messageAt(issues, 'health.checks.1.name')).toContain(
      '"app" is already the name of health.checks.0',
    );
    expect(messageAt(issues, 'health.checks.1.component')).toContain('expected one of app, cnc, analytics');
    expect(messageAt(issues, 'health.checks.1.url')).toContain('http:// or https://');
    expect(messageAt(issues, 'health.checks.1.bodyMatch')).toContain('regular expression');
    expect(messageAt(issues, 'rules.1.name')).toContain('a rule name');
    expect(messageAt(issues, 'rules.1.topicFilter')).toContain('# only as the whole last level');
    expect(messageAt(issues, 'rules.1.select')).toContain('at least one field');
    expect(messageAt(issues, 'rules.1.actions.0.type')).toContain('expected type bus, republish or http');
    expect(messageAt(issues, 'rules.2.actions')).toContain('at least one action');
    expect(messageAt(issues, 'rules.2.name')).toContain('"telemetry" is already the name of rules.0');
    const control = issuesOf(() =>
      parseConfig({
        control: {
          nodes: [
            { name: 'ctl', address: '127.0.0.21' },
            { name: 'ctl', address: '127.0.0.22' },
          ],
          etcd: {
            members: [
              { name: 'e', address: '127.0.0.31' },
              { name: 'e', address: '127.0.0.32' },
            ],
          },
        },
      }),
    );
    expect(messageAt(control, 'control.nodes.1.name')).toBe(
      '"ctl" is already the name of control.nodes.0; names must be unique',
    );
    expect(messageAt(control, 'control.etcd.members.1.name')).toBe(
      '"e" is already the name of control.etcd.members.0; names must be unique',
    );
    const jetstream = issuesOf(() =>
      parseConfig({
        events: { engine: 'jetstream' },
        regions: [
          { name: 'us-east', priority: 1, address: '127.0.0.11' },
          {
            name: 'us-west',
            priority: 2,
            address: '127.0.0.12',
            nats: {
              servers: [
                { name: 'n', address: '127.0.0.12' },
                { name: 'n', address: '127.0.0.12', clientPort: 4223, clusterPort: 8080 },
              ],
              replicas: 3,
            },
          },
        ],
      }),
    );
    expect(messageAt(jetstream, 'regions.0.nats')).toContain('the region needs its own NATS');
    expect(messageAt(jetstream, 'regions.1.nats.servers.1.name')).toBe(
      '"n" is already the name of regions.1.nats.servers.0; names must be unique',
    );
    expect(messageAt(jetstream, 'regions.1.nats.replicas')).toBe(
      "3 replicas need at least 3 servers; the region's NATS lists 2",
    );
    expect(messageAt(jetstream, 'regions.1.api.port')).toContain(
      '127.0.0.12:8080 is already used by regions.1.nats.servers.1.clusterPort',
    );
    // Without JetStream a region's NATS is not used: nothing is asked of it.
    expect(parseConfig({ events: { engine: 'sqlite' } }).events.engine).toBe('sqlite');
    const tickets = issuesOf(() => parseConfig({ broker: { tlsTickets: { rotateHours: 85 } } }));
    expect(messageAt(tickets, 'broker.tlsTickets.rotateHours')).toContain(
      'expected an integer between 1 and 84 (hours; a ticket lives two periods and TLS 1.3 allows at most 7 days), got 85',
    );
    expect(parseConfig({ broker: { tlsTickets: { rotateHours: 6 } } }).broker.tlsTickets.rotateHours).toBe(6);
    expect(issuesOf(() => parseConfig({ broker: { tlsTickets: { rotate: 6 } } }))[0]?.path).toBe(
      'broker.tlsTickets.rotate',
    );
    const failover = issuesOf(() =>
      parseConfig({ failover: { intervalMs: 50, failback: 'sometimes', checkers: ['control', 'control'] } }),
    );
    expect(messageAt(failover, 'failover.intervalMs')).toContain('between 100 and');
    expect(messageAt(failover, 'failover.failback')).toContain('expected one of manual, auto');
    expect(messageAt(failover, 'failover.checkers.1')).toContain('each checker votes once');
    const supervision = issuesOf(() =>
      parseConfig({
        supervision: { restart: 'sometimes', restartDelayMs: 20_000, restartMaxDelayMs: 15_000 },
      }),
    );
    expect(messageAt(supervision, 'supervision.restart')).toContain('expected one of always, never');
    const delays = issuesOf(() =>
      parseConfig({
        failover: { intervalMs: 2000, failureThreshold: 3, timeoutMs: 1000 },
        supervision: { restartDelayMs: 5000, restartMaxDelayMs: 4000 },
      }),
    );
    expect(messageAt(delays, 'supervision.restartMaxDelayMs')).toContain(
      'below supervision.restartDelayMs (5000)',
    );
    expect(
      parseConfig({ failover: { failureThreshold: 100 }, supervision: { restart: 'never' } }).supervision,
    ).toEqual({ restart: 'never', restartDelayMs: 10000, restartMaxDelayMs: 300000, stableMs: 60000 });
    // A probe is given up on only after it is late.
    const giveUp = issuesOf(() => parseConfig({ failover: { timeoutMs: 2000, giveUpMs: 1500 } }));
    expect(messageAt(giveUp, 'failover.giveUpMs')).toContain('below failover.timeoutMs (2000)');
    expect(parseConfig({ failover: { timeoutMs: 2000 } }).failover.giveUpMs).toBeUndefined();
    const dns = issuesOf(() => parseConfig({ dns: { provider: 'powerdns', extraNames: ['Bad.Name'] } }));
    expect(messageAt(dns, 'dns.powerdns')).toContain('required with provider powerdns');
    expect(messageAt(dns, 'dns.extraNames.0')).toContain('a lowercase DNS label');
    const servers = issuesOf(() =>
      parseConfig({
        dns: {
          extraNames: ['broker'],
          servers: [
            { name: 'ns', address: '127.0.0.21' },
            { name: 'broker', address: '127.0.0.22' },
            { name: 'ns-west', address: 'dns.example.com' },
            { name: 'ns-east', address: '127.0.0.10', port: 5353 },
          ],
        },
      }),
    );
    expect(messageAt(servers, 'dns.servers.0.name')).toContain("iotdr control's own name server");
    expect(messageAt(servers, 'dns.servers.1.name')).toContain('already dns.extraNames');
    expect(messageAt(servers, 'dns.servers.2.address')).toContain('not a hostname');
    expect(messageAt(servers, 'dns.servers.3.port')).toContain('already used by dns.port');
  });

  it('takes {region} in a health check URL, in the host or the path', () => {
    const config = parseConfig({
      health: {
        checks: [
          { name: 'a', component: 'app', url: 'http://app.{region}.internal/healthz' },
          { name: 'b', component: 'cnc', url: 'http://10.0.0.5/{region}/status' },
        ],
      },
    });
    expect(config.health.checks.map((c) => c.url)).toEqual([
      'http://app.{region}.internal/healthz',
      'http://10.0.0.5/{region}/status',
    ]);
  });

  it('checks listeners across processes, but never port 0', () => {
    const issues = issuesOf(() =>
      parseConfig({
        analytics: { port: 8080 },
        regions: [{ ...region('a', 1, '127.0.0.10'), api: { port: 0 }, mqtt: { port: 5353 } }],
      }),
    );
    expect(messageAt(issues, 'analytics.port')).toContain('already used by control.port');
    expect(messageAt(issues, 'regions.0.mqtt.port')).toContain('already used by dns.port');
    expect(issues).toHaveLength(2);
    expect(() =>
      parseConfig({ regions: [{ ...region('a', 1, '::1'), api: { port: 0 }, mqtt: { port: 0 } }] }),
    ).not.toThrow();
  });

  it('refuses a wildcard region address, which DNS would hand to devices', () => {
    const issues = issuesOf(() => parseConfig({ regions: [region('a', 1, '0.0.0.0')] }));
    expect(messageAt(issues, 'regions.0.address')).toContain('wildcard');
  });

  it('reports every problem at once, field and cross-field alike', () => {
    const error = (() => {
      try {
        parseConfig({
          zone: 'Bad_Zone',
          dns: { ttl: 100000 },
          logging: { level: 'loud' },
          regions: [region('a', 1.5, '10.0.0.1'), region('a', 2, '10.0.0.2'), { priority: 2 }],
        });
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(error.code).toBe('IOTDR_CONFIG_INVALID');
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(
      [
        'zone',
        'dns.ttl',
        'logging.level',
        'regions.0.priority',
        'regions.1.name',
        'regions.2.name',
        'regions.2.address',
        'regions.2.priority',
      ].sort(),
    );
    expect(error.message).toBe('invalid configuration (8 problems)');
  });

  it('accepts a rule at the rule model limits, refuses one past them, as the region does at start', () => {
    const http = (extra: Record<string, unknown>) => ({
      rules: [
        {
          name: 'hook',
          topicFilter: 'devices/+/telemetry',
          actions: [{ type: 'http', url: 'https://hooks.example.com/in', ...extra }],
        },
      ],
    });
    // The documented limits: timeoutMs 100–60,000 ms, maxAttempts 1–20.
    for (const extra of [
      { timeoutMs: 100, maxAttempts: 1 },
      { timeoutMs: 60_000, maxAttempts: 20 },
    ]) {
      const config = parseConfig(http(extra));
      // The region hands the configured rules to the rule engine, which checks them again.
      expect(parseRuleDefinitions(config.rules)).toHaveLength(1);
    }
    for (const [extra, path, message] of [
      [{ maxAttempts: 21 }, 'rules.0.actions.0.maxAttempts', 'between 1 and 20'],
      [{ timeoutMs: 99 }, 'rules.0.actions.0.timeoutMs', 'between 100 and 60000'],
    ] as const) {
      expect(
        messageAt(
          issuesOf(() => parseConfig(http(extra))),
          path,
        ),
      ).toContain(message);
      expect(() => parseRuleDefinitions(http(extra).rules)).toThrow();
    }
    // What only the rule model knows is refused here too: a rule republishing onto its own filter.
    const loop = issuesOf(() =>
      parseConfig({
        rules: [{ name: 'loop', topicFilter: 'a/+', actions: [{ type: 'republish', topic: 'a/b' }] }],
      }),
    );
    expect(messageAt(loop, 'rules.0.actions.0.topic')).toContain('a loop');
    // Nor may a rule write the platform's own topics (a failover notice every device would obey).
    const forged = issuesOf(() =>
      parseConfig({
        rules: [
          {
            name: 'forge',
            topicFilter: 'a/+',
            actions: [{ type: 'republish', topic: '$iotdr/notices/failover' }],
          },
        ],
      }),
    );
    expect(messageAt(forged, 'rules.0.actions.0.topic')).toContain('written by the platform only');
  });
});

describe('parseConfigYaml', () => {
  it('treats an empty file as all defaults', () => {
    expect(parseConfigYaml('', 'iotdr.yaml')).toEqual(parseConfig({}));
    expect(parseConfigYaml('# only a comment\n', 'iotdr.yaml')).toEqual(parseConfig({}));
  });

  it('reports YAML syntax errors with line:column and the file', () => {
    let error: unknown;
    try {
      parseConfigYaml('zone: iot.test\ndns:\n  ttl: 5\n  ttl: 6\n', '/etc/iotdr.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.message).toContain('YAML syntax error in /etc/iotdr.yaml');
    expect(configError.issues).toEqual([{ path: '4:3', message: 'Map keys must be unique' }]);
  });

  it('adds the line of the offending field to schema errors', () => {
    const text = [
      'zone: iot.test',
      'regions:',
      '  - name: a',
      '    priority: 1',
      '    address: 10.0.0.1',
      '    api:',
      '      port: http',
      '',
    ].join('\n');
    const issues = issuesOf(() => parseConfigYaml(text, 'iotdr.yaml'));
    expect(messageAt(issues, 'regions.0.api.port')).toBe(
      'expected an integer between 0 and 65535 (0 picks a free port), got "http" (line 7)',
    );
  });
});

describe('helpers', () => {
  const config = parseConfig({
    regions: [
      { ...region('b', 2, '10.0.0.2'), store: { path: 'b.db' } },
      { ...region('a', 1, '10.0.0.1'), store: { path: '/var/lib/iotdr/a.db' } },
      region('c', 3, '10.0.0.3'),
      { ...region('d', 4, '10.0.0.4'), store: { engine: 'postgres', url: 'postgres://db/iotdr' } },
    ],
  });

  it('finds regions by name and lists the known ones otherwise', () => {
    expect(regionByName(config, 'c').address).toBe('10.0.0.3');
    expect(() => regionByName(config, 'x')).toThrow(/no region named "x"; configured regions are b, a, c, d/);
    expect(primaryRegion(config).name).toBe('a');
  });

  it('resolves sqlite paths against the state directory', () => {
    expect(sqlitePath(regionByName(config, 'b'), '/state')).toBe('/state/b.db');
    expect(sqlitePath(regionByName(config, 'a'), '/state')).toBe('/var/lib/iotdr/a.db');
    expect(sqlitePath(regionByName(config, 'c'), '/state')).toBe('/state/regions/c/registry.db');
    expect(sqlitePath(regionByName(config, 'd'), '/state')).toBeUndefined();
  });

  it('redacts fields named like secrets and keeps the rest', () => {
    const withSecrets = {
      ...config,
      adminToken: 'abc',
      nested: { password: 'p', clientSecret: 's', url: 'https://u:p@h/' },
    };
    const redacted = redactConfig(withSecrets as unknown as IotdrConfig) as Record<string, unknown>;
    expect(redacted.adminToken).toBe(REDACTED);
    expect(redacted.nested).toEqual({
      password: REDACTED,
      clientSecret: REDACTED,
      url: `https://u:${encodeURIComponent(REDACTED)}@h/`,
    });
    expect(redacted.zone).toBe('iot.test');
    expect(redactConfig(config)).toEqual(config);
    expect(Object.isFrozen(redactConfig(config))).toBe(false);
  });
});

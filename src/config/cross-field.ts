/**
 * Rules across fields and sections. They run even when other fields are invalid, so one pass
 * reports every problem; each rule therefore looks only at values that are valid on their own.
 */
import { isIP } from 'node:net';
import type { z } from 'zod';
import { redisKey } from '../broker/index.js';
import {
  DEFAULT_API_NAME,
  DEFAULT_MQTT_NAME,
  DEFAULT_MQTT_TOKEN_PORT,
  dnsLabelSchema,
  isAddress,
  portSchema,
} from '../common/index.js';
import { CONTROL_NAMESERVER, DEFAULT_DNS_PORT, DEFAULT_DNS_SERVER_HTTP_PORT } from '../dns/index.js';
import { zoneSchema } from './fleet.js';
import { DEFAULT_REGION_CNC_PORT, regionSchema } from './region-schema.js';
import { supervisionSection } from './supervision.js';

type Path = (string | number)[];
export interface CrossIssue {
  path: Path;
  message: string;
}

function valid<T>(schema: z.ZodType<T>, value: unknown): value is T {
  return schema.safeParse(value).success;
}

function field(value: unknown, ...keys: (string | number)[]): unknown {
  let current = value;
  for (const key of keys) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

/** Canonical form of an address so `::1` and `0:0::1` compare equal. */
function addressKey(address: string): string {
  if (isIP(address) === 6) return new URL(`http://[${address.replace(/%.*$/, '')}]`).hostname;
  return address.toLowerCase();
}

/** 127.0.0.0/8, ::1 (any spelling), IPv4-mapped loopback, or localhost. */
export function isLoopback(address: string): boolean {
  if (address.toLowerCase() === 'localhost') return true;
  const kind = isIP(address);
  if (kind === 4) return address.startsWith('127.');
  if (kind !== 6) return false;
  const canonical = addressKey(address);
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/** Each entry's `name` once in the list at `path` (no list, no issue). */
function uniqueNames(config: unknown, path: Path): CrossIssue[] {
  const list = field(config, ...path);
  const seen = new Map<string, number>();
  const issues: CrossIssue[] = [];
  (Array.isArray(list) ? list : []).forEach((entry, i) => {
    const name = field(entry, 'name');
    if (typeof name !== 'string') return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, i);
    else
      issues.push({
        path: [...path, i, 'name'],
        message: `"${name}" is already the name of ${path.join('.')}.${first}; names must be unique`,
      });
  });
  return issues;
}

export function crossFieldIssues(config: unknown): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const zone = field(config, 'zone');
  for (const kind of ['mqtt', 'api'] as const) {
    const label = field(config, 'names', kind);
    if (valid(zoneSchema, zone) && valid(dnsLabelSchema, label) && `${label}.${zone}`.length > 253) {
      issues.push({
        path: ['names', kind],
        message: `${label}.${zone} is longer than the 253 characters DNS allows`,
      });
    }
  }
  const mqttName = field(config, 'names', 'mqtt');
  if (typeof mqttName === 'string' && mqttName === field(config, 'names', 'api')) {
    issues.push({ path: ['names', 'api'], message: `must differ from names.mqtt (both are "${mqttName}")` });
  }

  const regions = field(config, 'regions');
  const list = Array.isArray(regions) ? regions : [];
  const names = new Map<string, number>();
  const priorities = new Map<number, number>();
  const sqlitePaths = new Map<string, number>();
  list.forEach((region, i) => {
    const name = field(region, 'name');
    if (valid(regionSchema.shape.name, name)) {
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else
        issues.push({
          path: ['regions', i, 'name'],
          message: `"${name}" is already the name of regions.${first}`,
        });
    }
    const priority = field(region, 'priority');
    if (valid(regionSchema.shape.priority, priority)) {
      const first = priorities.get(priority);
      if (first === undefined) priorities.set(priority, i);
      else
        issues.push({
          path: ['regions', i, 'priority'],
          message: `priority ${priority} is already taken by regions.${first}; every region needs its own priority (lower is preferred)`,
        });
    }
    const address = field(region, 'address');
    if (typeof address === 'string' && isAddress(address)) {
      const ip = isIP(address) === 0 ? undefined : addressKey(address);
      if (ip === '0.0.0.0' || ip === '::') {
        issues.push({
          path: ['regions', i, 'address'],
          message: `${address} is a wildcard; a region's address is what DNS gives devices, so it must be reachable`,
        });
      }
    }
    const store = field(region, 'store');
    if (field(store, 'engine') === 'sqlite') {
      const path = field(store, 'path');
      if (typeof path === 'string') {
        const first = sqlitePaths.get(path);
        if (first === undefined) sqlitePaths.set(path, i);
        else
          issues.push({
            path: ['regions', i, 'store', 'path'],
            message: `"${path}" is already the database of regions.${first}; each region needs its own`,
          });
      }
    }
  });

  // Workers share messages and sessions through the region's Redis; regions never share one.
  const workers = field(config, 'broker', 'workers');
  const redisUrls = new Map<string, number>();
  list.forEach((region, i) => {
    const url = field(region, 'redis', 'url');
    if (typeof workers === 'number' && workers > 1 && url === undefined)
      issues.push({
        path: ['regions', i, 'redis'],
        message: `broker.workers is ${workers}: the region needs its own redis ({url: redis://host:port/db}) for the workers to share`,
      });
    const key = typeof url === 'string' ? redisKey(url) : undefined;
    if (key === undefined) return;
    const first = redisUrls.get(key);
    if (first === undefined) redisUrls.set(key, i);
    else
      issues.push({
        path: ['regions', i, 'redis', 'url'],
        message: `the same Redis database as regions.${first}; each region needs its own (another server or database number)`,
      });
  });

  // With JetStream every region's bus is a stream in the region's own NATS.
  const jetstream = field(config, 'events', 'engine') === 'jetstream';
  const natsListeners: { path: Path; address: unknown; port: unknown }[] = [];
  const natsAddresses: { path: Path; address: unknown }[] = [];
  list.forEach((region, i) => {
    const nats = field(region, 'nats');
    if (jetstream && nats === undefined)
      issues.push({
        path: ['regions', i, 'nats'],
        message:
          'events.engine is jetstream: the region needs its own NATS ({ servers: [{ name, address, clientPort, clusterPort }] })',
      });
    const servers = field(nats, 'servers');
    if (!Array.isArray(servers)) return;
    issues.push(...uniqueNames(config, ['regions', i, 'nats', 'servers']));
    const replicas = field(nats, 'replicas');
    if (typeof replicas === 'number' && replicas > servers.length)
      issues.push({
        path: ['regions', i, 'nats', 'replicas'],
        message: `${replicas} replicas need at least ${replicas} servers; the region's NATS lists ${servers.length}`,
      });
    if (!jetstream) return;
    servers.forEach((server, j) => {
      const path: Path = ['regions', i, 'nats', 'servers', j];
      natsAddresses.push({ path: [...path, 'address'], address: field(server, 'address') });
      natsListeners.push({
        path: [...path, 'clientPort'],
        address: field(server, 'address'),
        port: field(server, 'clientPort'),
      });
      // A server alone listens for no peers.
      if (servers.length > 1)
        natsListeners.push({
          path: [...path, 'clusterPort'],
          address: field(server, 'address'),
          port: field(server, 'clusterPort'),
        });
    });
  });

  const nodes = field(config, 'control', 'nodes');
  const nodeList = Array.isArray(nodes) ? nodes : [];
  const members = field(config, 'control', 'etcd', 'members');
  const memberList = Array.isArray(members) ? members : [];
  issues.push(...uniqueNames(config, ['control', 'nodes']));
  issues.push(...uniqueNames(config, ['control', 'etcd', 'members']));
  if (nodeList.length > 0 && memberList.length === 0)
    issues.push({
      path: ['control', 'etcd', 'members'],
      message:
        'required with control.nodes: the etcd members the nodes elect their leader through ([{ name, address, clientPort, peerPort }])',
    });

  // Every TCP listener on one (address, port) at most. DNS listens on TCP as well as UDP. With
  // control nodes, the single control process's listeners (control, dns) are not used.
  const listeners: { path: Path; address: unknown; port: unknown }[] = [
    ...(nodeList.length > 0
      ? nodeList.flatMap((node, i) => [
          {
            path: ['control', 'nodes', i, 'port'],
            address: field(node, 'address'),
            port: field(node, 'port'),
          },
          {
            path: ['control', 'nodes', i, 'dnsPort'],
            address: field(node, 'address'),
            port: field(node, 'dnsPort'),
          },
        ])
      : [
          {
            path: ['dns', 'port'],
            address: field(config, 'dns', 'address'),
            port: field(config, 'dns', 'port'),
          },
          {
            path: ['control', 'port'],
            address: field(config, 'control', 'address'),
            port: field(config, 'control', 'port'),
          },
        ]),
    ...memberList.flatMap((member, i) =>
      (['clientPort', 'peerPort'] as const).map((key) => ({
        path: ['control', 'etcd', 'members', i, key],
        address: field(member, 'address'),
        port: field(member, key),
      })),
    ),
    {
      path: ['analytics', 'port'],
      address: field(config, 'analytics', 'address'),
      port: field(config, 'analytics', 'port'),
    },
    ...natsListeners,
  ];
  const tokenAuth = field(config, 'broker', 'tokenAuth') === true;
  list.forEach((region, i) => {
    for (const kind of ['api', 'mqtt'] as const) {
      listeners.push({
        path: ['regions', i, kind, 'port'],
        address: field(region, 'address'),
        port: field(region, kind, 'port'),
      });
    }
    listeners.push({
      path: ['regions', i, 'cnc', 'port'],
      address: field(region, 'address'),
      port: field(region, 'cnc', 'port') ?? DEFAULT_REGION_CNC_PORT,
    });
    if (tokenAuth) {
      listeners.push({
        path: ['regions', i, 'mqtt', 'tokenPort'],
        address: field(region, 'address'),
        port: field(region, 'mqtt', 'tokenPort') ?? DEFAULT_MQTT_TOKEN_PORT,
      });
    }
  });
  const servers = field(config, 'dns', 'servers');
  if (Array.isArray(servers)) {
    const reserved = new Map<string, string>(
      nodeList.length > 0
        ? nodeList.map((node, i) => [
            String(field(node, 'name')),
            `control.nodes.${i} (a control node's name server)`,
          ])
        : [[CONTROL_NAMESERVER, "iotdr control's own name server"]],
    );
    for (const key of ['mqtt', 'api'] as const) {
      const label = field(config, 'names', key) ?? (key === 'mqtt' ? DEFAULT_MQTT_NAME : DEFAULT_API_NAME);
      if (typeof label === 'string') reserved.set(label, `names.${key}`);
    }
    const extra = field(config, 'dns', 'extraNames');
    if (Array.isArray(extra)) for (const label of extra) reserved.set(String(label), 'dns.extraNames');
    servers.forEach((server, i) => {
      const name = field(server, 'name');
      if (typeof name !== 'string') return;
      const taken = reserved.get(name);
      if (taken !== undefined)
        issues.push({
          path: ['dns', 'servers', i, 'name'],
          message: `"${name}" is already ${taken}; each name server needs a label of its own`,
        });
      else reserved.set(name, `dns.servers.${i}`);
      for (const [kind, key] of [
        ['port', 'port'],
        ['httpPort', 'httpPort'],
      ] as const)
        listeners.push({
          path: ['dns', 'servers', i, kind],
          address: field(server, 'address'),
          port: field(server, key) ?? (kind === 'port' ? DEFAULT_DNS_PORT : DEFAULT_DNS_SERVER_HTTP_PORT),
        });
    });
  }

  const taken = new Map<string, Path>();
  for (const { path, address, port } of listeners) {
    // Port 0 is a fresh ephemeral port every time: it never collides.
    if (typeof address !== 'string' || !isAddress(address) || !valid(portSchema, port) || port === 0)
      continue;
    const key = `${addressKey(address)} ${port}`;
    const first = taken.get(key);
    if (first === undefined) taken.set(key, path);
    else
      issues.push({
        path,
        message: `${address}:${port} is already used by ${first.join('.')}; each listener needs its own address and port`,
      });
  }

  const tokensFrom = field(config, 'replication', 'tokensFrom');
  if (Array.isArray(tokensFrom))
    tokensFrom.forEach((name, i) => {
      if (typeof name === 'string' && !names.has(name))
        issues.push({
          path: ['replication', 'tokensFrom', i],
          message: `"${name}" is not a configured region; known: ${[...names.keys()].join(', ')}`,
        });
    });

  // Plain HTTP between processes carries tokens in clear: only where no network can see it.
  if (field(config, 'links', 'mode') === 'plain-loopback') {
    const addresses: { path: Path; address: unknown }[] = [
      { path: ['control', 'address'], address: field(config, 'control', 'address') },
      ...nodeList.map((node, i) => ({
        path: ['control', 'nodes', i, 'address'],
        address: field(node, 'address'),
      })),
      ...memberList.map((member, i) => ({
        path: ['control', 'etcd', 'members', i, 'address'],
        address: field(member, 'address'),
      })),
      { path: ['analytics', 'address'], address: field(config, 'analytics', 'address') },
      ...list.map((region, i) => ({ path: ['regions', i, 'address'], address: field(region, 'address') })),
      ...natsAddresses,
      ...(Array.isArray(servers) ? servers : []).map((server, i) => ({
        path: ['dns', 'servers', i, 'address'],
        address: field(server, 'address'),
      })),
    ];
    for (const { path, address } of addresses) {
      if (typeof address !== 'string' || isLoopback(address)) continue;
      issues.push({
        path,
        message: `${address} is not a loopback address; links.mode plain-loopback is a development switch for one machine (127.0.0.0/8, ::1, localhost): use links.mode mutual-tls`,
      });
    }
  }

  if (field(config, 'dns', 'provider') === 'powerdns' && field(config, 'dns', 'powerdns') === undefined) {
    issues.push({
      path: ['dns', 'powerdns'],
      message: 'required with provider powerdns: { url, apiKeyFile } of the PowerDNS API',
    });
  }

  const timeout = field(config, 'failover', 'timeoutMs');
  const giveUp = field(config, 'failover', 'giveUpMs');
  if (typeof timeout === 'number' && typeof giveUp === 'number' && giveUp < timeout)
    issues.push({
      path: ['failover', 'giveUpMs'],
      message: `${giveUp} is below failover.timeoutMs (${timeout}); a probe can only be given up after it is late`,
    });

  const checkers = field(config, 'failover', 'checkers');
  if (Array.isArray(checkers)) {
    checkers.forEach((id, i) => {
      const first = checkers.indexOf(id);
      if (typeof id === 'string' && first !== i)
        issues.push({
          path: ['failover', 'checkers', i],
          message: `"${id}" is already failover.checkers.${first}; each checker votes once`,
        });
    });
  }

  // A whole section, defaults filled in: compared only once it is valid on its own.
  const supervision = supervisionSection.safeParse(field(config, 'supervision'));
  if (supervision.success) {
    const { restartDelayMs, restartMaxDelayMs } = supervision.data;
    if (restartMaxDelayMs < restartDelayMs)
      issues.push({
        path: ['supervision', 'restartMaxDelayMs'],
        message: `${restartMaxDelayMs} is below supervision.restartDelayMs (${restartDelayMs}); expected at least the first delay`,
      });
  }

  // Names that must be unique within their list: health checks, rules.
  issues.push(...uniqueNames(config, ['health', 'checks']));
  issues.push(...uniqueNames(config, ['rules']));
  return issues;
}

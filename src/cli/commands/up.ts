import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { baseUrl } from '../../common/index.js';
import type { IotdrConfig, RegionConfig } from '../../config/index.js';
import { dnsTokenPath } from '../../control.js';
import { loadOrCreateCa } from '../../pki/index.js';
import { adminTokenPath, caCertPath, loadOrCreateAdminToken, loadOrCreateToken } from '../../region.js';
import { loadFor, parseCommand } from '../args.js';
import type { Command } from '../io.js';

const USAGE = `usage: iotdr up [--config FILE]

Starts every region of the configuration and the control plane (checker, failover controller,
DNS) as child processes, waits until each answers, writes <state>/endpoints.json and prints the
endpoints. Ctrl-C stops them all. Logs go to <state>/logs/.`;

/** How long a region may take to answer after it was started, in ms. */
const START_TIMEOUT_MS = 60_000;

/** The primary is the region with the lowest priority number. */
function roleOf(config: IotdrConfig, region: RegionConfig): 'primary' | 'secondary' {
  const best = Math.min(...config.regions.map((r) => r.priority));
  return region.priority === best ? 'primary' : 'secondary';
}

/** What a region's /livez says of its listeners (the real ports when the config says 0). */
export interface LiveInfo {
  mqtt?: string;
  cnc?: string;
  mqttToken?: string;
}

export function endpointsDocument(
  config: IotdrConfig,
  stateDir: string,
  cwd: string,
  live: Readonly<Record<string, LiveInfo>> = {},
) {
  const rel = (p: string) => {
    const r = relative(cwd, p);
    return r.startsWith('..') ? p : r;
  };
  return {
    zone: config.zone,
    names: { mqtt: `${config.names.mqtt}.${config.zone}`, api: `${config.names.api}.${config.zone}` },
    dns: { host: config.dns.address, port: config.dns.port },
    ...(config.dns.servers.length > 0
      ? {
          dnsServers: config.dns.servers.map((d) => ({
            name: `${d.name}.${config.zone}`,
            host: d.address,
            port: d.port,
            health: `${baseUrl(d.address, d.httpPort)}/health`,
          })),
        }
      : {}),
    control: baseUrl(config.control.address, config.control.port),
    analytics: baseUrl(config.analytics.address, config.analytics.port),
    regions: Object.fromEntries(
      config.regions.map((r) => [
        r.name,
        {
          api: baseUrl(r.address, r.api.port, 'http'),
          mqtt: live[r.name]?.mqtt ?? baseUrl(r.address, r.mqtt.port, 'mqtts'),
          cnc: live[r.name]?.cnc ?? baseUrl(r.address, r.cnc.port, r.cnc.tls ? 'https' : 'http'),
          ...(config.broker.tokenAuth
            ? { mqttToken: live[r.name]?.mqttToken ?? baseUrl(r.address, r.mqtt.tokenPort, 'mqtts') }
            : {}),
          role: roleOf(config, r),
        },
      ]),
    ),
    caCert: rel(caCertPath(stateDir)),
    adminToken: rel(adminTokenPath(stateDir)),
  };
}

/** Polls `url` + `path` until it answers 2xx (a DNS server's /health does once it serves a decision). */
async function waitLive(
  url: string,
  child: ChildProcess,
  deadline: number,
  path = '/livez',
): Promise<LiveInfo> {
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before answering`);
    }
    try {
      const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) {
        const body = (await res.json()) as Record<string, unknown>;
        const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
        const mqtt = text(body.mqtt);
        const mqttToken = text(body.mqttToken);
        const cnc = text(body.cnc);
        return { ...(mqtt ? { mqtt } : {}), ...(mqttToken ? { mqttToken } : {}), ...(cnc ? { cnc } : {}) };
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`did not answer ${url}${path} within ${START_TIMEOUT_MS / 1000} s`);
}

function stopAll(children: ChildProcess[]): Promise<void> {
  return Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  ).then(() => undefined);
}

export const upCommand: Command = async (argv, io) => {
  const values = parseCommand('up', USAGE, argv, {}, io);
  if (typeof values === 'number') return values;
  const loaded = await loadFor(io, values);
  const { config, stateDir } = loaded;
  io.out(`iotdr up: configuration ${loaded.source}, state ${stateDir}`);
  // Made here once, so the regions starting side by side find them instead of racing to make them.
  await loadOrCreateCa(join(stateDir, 'pki'));
  await loadOrCreateAdminToken(stateDir);
  if (config.dns.servers.length > 0) await loadOrCreateToken(stateDir, dnsTokenPath(stateDir));
  const logDir = join(stateDir, 'logs');
  mkdirSync(logDir, { recursive: true, mode: 0o700 });

  const entry = process.argv[1] ?? '';
  // Every region, then the control plane (checker, controller, DNS), each a child process with its log.
  const processes = [
    ...config.regions.map((region) => ({
      name: region.name,
      what: `region ${region.name}`,
      args: ['region', '--name', region.name],
    })),
    { name: 'control', what: 'control', args: ['control'] },
    { name: 'analytics', what: 'analytics', args: ['analytics'] },
    ...config.dns.servers.map((d) => ({
      name: `dns-${d.name}`,
      what: `DNS server ${d.name}`,
      args: ['dns', '--name', d.name],
    })),
  ];
  const children: ChildProcess[] = [];
  let stopping = false;
  const exited = new Promise<string>((resolve) => {
    for (const proc of processes) {
      const log = openSync(join(logDir, `${proc.name}.log`), 'a', 0o600);
      const args = [...process.execArgv, entry, ...proc.args];
      if (loaded.source !== '(defaults)') args.push('--config', loaded.source);
      const child = spawn(process.execPath, args, {
        stdio: ['ignore', log, log],
        env: { ...io.env, IOTDR_HOME: stateDir },
        cwd: io.cwd,
      });
      child.once('exit', (code, signal) => {
        if (!stopping)
          resolve(`${proc.what} exited (${code ?? signal}); see ${join(logDir, `${proc.name}.log`)}`);
      });
      children.push(child);
    }
  });

  const live: Record<string, LiveInfo> = {};
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    await Promise.all(
      config.regions.map((region, i) => {
        const child = children[i];
        if (!child) throw new Error('child missing');
        const url = baseUrl(region.address, region.api.port, 'http');
        return waitLive(url, child, deadline).then(
          (info) => {
            live[region.name] = info;
            const mqtt = info.mqtt ?? baseUrl(region.address, region.mqtt.port, 'mqtts');
            io.out(`  region ${region.name.padEnd(12)} ${roleOf(config, region).padEnd(10)} ${url}  ${mqtt}`);
          },
          (error: Error) => {
            throw new Error(
              `region ${region.name} ${error.message}; see ${join(logDir, `${region.name}.log`)}`,
            );
          },
        );
      }),
    );
    const controlChild = children[config.regions.length];
    if (!controlChild) throw new Error('control child missing');
    const controlUrl = baseUrl(config.control.address, config.control.port);
    await waitLive(controlUrl, controlChild, deadline).catch((error: Error) => {
      throw new Error(`control ${error.message}; see ${join(logDir, 'control.log')}`);
    });
    io.out(`  control                         ${controlUrl}  dns ${config.dns.address}:${config.dns.port}`);
    const analyticsChild = children[config.regions.length + 1];
    if (!analyticsChild) throw new Error('analytics child missing');
    const analyticsUrl = baseUrl(config.analytics.address, config.analytics.port);
    await waitLive(analyticsUrl, analyticsChild, deadline).catch((error: Error) => {
      throw new Error(`analytics ${error.message}; see ${join(logDir, 'analytics.log')}`);
    });
    io.out(`  analytics                       ${analyticsUrl}  (dashboard)`);
    await Promise.all(
      config.dns.servers.map(async (d, i) => {
        const child = children[config.regions.length + 2 + i];
        if (!child) throw new Error('DNS server child missing');
        await waitLive(baseUrl(d.address, d.httpPort), child, deadline, '/health').catch((error: Error) => {
          throw new Error(`DNS server ${d.name} ${error.message}; see ${join(logDir, `dns-${d.name}.log`)}`);
        });
        io.out(`  dns ${d.name.padEnd(27)} ${baseUrl(d.address, d.httpPort)}  dns ${d.address}:${d.port}`);
      }),
    );
  } catch (error) {
    io.err(`iotdr up: ${(error as Error).message}`);
    stopping = true;
    await stopAll(children);
    return 1;
  }

  const endpoints = endpointsDocument(config, stateDir, io.cwd, live);
  const endpointsPath = join(stateDir, 'endpoints.json');
  await writeFile(endpointsPath, `${JSON.stringify(endpoints, null, 2)}\n`);
  io.out('');
  io.out(`  DR names      ${endpoints.names.mqtt}, ${endpoints.names.api} (zone ${endpoints.zone})`);
  io.out(`  try           dig @${config.dns.address} -p ${config.dns.port} ${endpoints.names.mqtt}`);
  io.out(`  CA            ${endpoints.caCert}`);
  io.out(`  admin token   ${endpoints.adminToken}`);
  io.out(`  endpoints     ${endpointsPath}`);
  io.out(`  logs          ${logDir}`);
  io.out('');
  io.out('iotdr is up; Ctrl-C stops it');

  const signalled = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const reason = await Promise.race([exited, signalled]);
  stopping = true;
  const failed = reason !== 'SIGINT' && reason !== 'SIGTERM';
  if (failed) io.err(`iotdr up: ${reason}; stopping the others`);
  else io.out('iotdr up: stopping');
  await stopAll(children);
  io.out('iotdr up: stopped');
  return failed ? 1 : 0;
};

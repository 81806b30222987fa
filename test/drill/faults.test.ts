/**
 * Faults made for real in a region started with fault injection: the broker closed, the
 * command-and-control listener closed (and opened again), the demo application service failing —
 * each seen by the region's own health as a checker would see it. Without the flag, nothing. And
 * `iotdr region` as a process of its own, set up as `iotdr drill` sets it up, watching its demo
 * service over HTTPS.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { drillConfig } from '../../src/drill/index.js';
import { APP_TARGET_PATH } from '../../src/faults/index.js';
import { type RunningRegion, startRegion } from '../../src/processes/index.js';
import { fetch } from '../harness/https.js';
import { freePort, type IotdrProcess, spawnIotdr, waitForHttp } from '../harness/process.js';
import { startTestRegion, type TestRegion } from '../harness/region.js';

describe('fault injection', () => {
  let stateDir: string;
  let region: RunningRegion;
  let token: string;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'iotdr-faults-'));
    const apiPort = await freePort();
    const config = parseConfig({
      logging: { level: 'silent' },
      analytics: { regionCheck: false },
      regions: [
        {
          name: 'us-east',
          priority: 1,
          address: '127.0.0.1',
          api: { port: apiPort },
          cnc: { port: 0 },
          mqtt: { port: 0 },
        },
      ],
      health: {
        // Every request runs the checkpoints: the tests read /health right after each fault.
        cacheMs: 0,
        // The region's own demo service, on its HTTPS API (a certificate from the platform's CA).
        checks: [{ name: 'orders', component: 'app', url: `https://127.0.0.1:${apiPort}${APP_TARGET_PATH}` }],
      },
    });
    region = await startRegion({
      config,
      stateDir,
      name: 'us-east',
      faults: true,
      logger: createLogger({ level: 'silent' }),
    });
    token = (await readFile(join(stateDir, 'secrets', 'admin.token'), 'utf8')).trim();
  });

  afterAll(async () => {
    await region?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  async function call(method: string, path: string) {
    const res = await fetch(`${region.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  const checkStatus = async (key: string) =>
    (await call('GET', '/health')).body.checks[key][0].status as string;

  it('fails the application service a health check watches, and brings it back', async () => {
    expect(await checkStatus('app:responseTime')).toBe('pass');
    const made = await call('POST', '/v1/faults/app-unhealthy');
    expect(made.status).toBe(200);
    expect(made.body).toMatchObject({ fault: 'app-unhealthy', at: expect.any(Number) });
    expect(await checkStatus('app:responseTime')).toBe('fail');
    expect((await call('GET', '/health')).body.status).toBe('fail');
    expect((await call('DELETE', '/v1/faults/app-unhealthy')).status).toBe(204);
    expect(await checkStatus('app:responseTime')).toBe('pass');
  });

  it('closes the command-and-control listener and opens it again on the same port', async () => {
    const url = region.cnc.url;
    expect(await checkStatus('cnc:responseTime')).toBe('pass');
    await call('POST', '/v1/faults/cnc-unhealthy');
    await expect(fetch(`${url}/livez`)).rejects.toThrow();
    expect(await checkStatus('cnc:responseTime')).toBe('fail');
    expect((await call('GET', '/v1/faults')).body.active.map((f: { fault: string }) => f.fault)).toEqual([
      'cnc-unhealthy',
    ]);
    await call('DELETE', '/v1/faults/cnc-unhealthy');
    expect(region.cnc.url).toBe(url);
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    expect(await checkStatus('cnc:responseTime')).toBe('pass');
  });

  it('crashes the broker: connections refused, the broker checkpoint fails, and it cannot be undone in place', async () => {
    const target = new URL(region.mqttUrl);
    await call('POST', '/v1/faults/broker-crash');
    await expect(
      mqtt.connectAsync({
        protocol: 'mqtts',
        host: target.hostname,
        port: Number(target.port),
        rejectUnauthorized: false,
        reconnectPeriod: 0,
        connectTimeout: 2000,
      }),
    ).rejects.toThrow();
    expect(await checkStatus('broker:roundTrip')).toBe('fail');
    const undo = await call('DELETE', '/v1/faults/broker-crash');
    expect(undo.status).toBe(409);
    expect(undo.body.code).toBe('IOTDR_FAULTS_NOT_RESTORABLE');
  });
});

describe('a region without fault injection', () => {
  let t: TestRegion;
  beforeAll(async () => {
    t = await startTestRegion('us-west');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses every fault with 403 and changes nothing', async () => {
    for (const fault of ['broker-crash', 'cnc-unhealthy', 'app-unhealthy']) {
      const res = await t.call('POST', `/v1/faults/${fault}`);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('IOTDR_FAULTS_DISABLED');
    }
    expect((await t.call('POST', '/v1/faults/dns-outage')).status).toBe(400);
    expect((await t.call('GET', '/health')).body.checks['broker:roundTrip'][0].status).toBe('pass');
  });
});

describe('a region process watching its demo service, as iotdr drill sets it up', () => {
  let home: string;
  let proc: IotdrProcess | undefined;

  afterAll(async () => {
    if (proc && proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
    if (home) await rm(home, { recursive: true, force: true });
  });

  // In a process of its own the region has only node's client: nothing of the tests' HTTPS
  // harness helps it trust the platform's CA.
  it('passes the app check over HTTPS, and fails it with app-unhealthy', async () => {
    home = await mkdtemp(join(tmpdir(), 'iotdr-faults-process-'));
    const port = await freePort();
    const source = join(home, 'iotdr.yaml');
    await writeFile(
      source,
      JSON.stringify({
        logging: { level: 'warn' },
        analytics: { regionCheck: false },
        health: { cacheMs: 0 },
        regions: [
          {
            name: 'us-east',
            priority: 1,
            address: '127.0.0.1',
            api: { port },
            mqtt: { port: 0 },
            cnc: { port: 0 },
          },
        ],
      }),
    );
    const { configFile, config } = await drillConfig({ sourceFile: source, auth: 'mtls', stateDir: home });
    expect(config.health.checks.map((c) => c.url)).toEqual([`https://{address}:${port}${APP_TARGET_PATH}`]);
    proc = spawnIotdr(['region', '--name', 'us-east', '--enable-faults', '--config', configFile as string], {
      IOTDR_HOME: home,
    });
    const url = `https://127.0.0.1:${port}`;
    await waitForHttp(`${url}/livez`, proc);
    const token = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
    const appCheck = async () => {
      const res = await fetch(`${url}/health`);
      return ((await res.json()) as any).checks['app:responseTime'][0];
    };
    expect(await appCheck()).toMatchObject({ componentId: 'drill-app', status: 'pass' });
    const made = await fetch(`${url}/v1/faults/app-unhealthy`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(made.status).toBe(200);
    expect(await appCheck()).toMatchObject({ status: 'fail', output: 'answered 503, expected 200' });
  }, 60_000);
});

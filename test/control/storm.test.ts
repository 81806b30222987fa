/**
 * Busy is not dead, for real: two regions as their own processes, the control plane on the default
 * failover timings, and a reconnect storm of registered devices into the primary from another
 * process — enough to keep its handshake line full for more than 10 s. The primary must stay up
 * for the controller and the fleet must not move.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { type RunningControl, startControl } from '../../src/control.js';
import { eventually } from '../harness/cluster.js';
import { freePort, type IotdrProcess, killGroup, ROOT, spawnIotdr, waitForHttp } from '../harness/process.js';
import type { StormOptions, StormResult } from '../harness/storm-child.js';

const EAST = '127.0.0.41';
const WEST = '127.0.0.42';
/** Devices of the storm: each connects again as soon as it is answered, all at once. */
const DEVICES = 20;
const IN_FLIGHT = 400;
const STORM_MS = 25_000;
/** How long the handshake line must stay full for the storm to count as one. */
const FULL_LINE_MS = 10_000;
const SAMPLE_MS = 250;

interface Sample {
  at: number;
  /** Connections waiting for a handshake slot; null when /metrics did not answer in time. */
  waiting: number | null;
  eastStatus: string;
  degraded: boolean;
  epoch: number;
}

async function gauge(metricsUrl: string, name: string): Promise<number | null> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    // `name value` or `name{labels} value`
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
  } catch {
    return null;
  }
}

describe('a reconnect storm into the primary', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('keeps the primary up for the controller while its handshake line is full for 10 s: no switch', async () => {
    const home = await mkdtemp(join(tmpdir(), 'iotdr-storm-'));
    cleanup.push(() => rm(home, { recursive: true, force: true }));
    const [eastApi, eastMqtt, westApi, westMqtt] = [
      await freePort(EAST),
      await freePort(EAST),
      await freePort(WEST),
      await freePort(WEST),
    ];
    const raw = {
      logging: { level: 'warn' },
      regions: [
        {
          name: 'us-east',
          priority: 1,
          address: EAST,
          api: { port: eastApi },
          mqtt: { port: eastMqtt },
          cnc: { port: 0 },
        },
        {
          name: 'us-west',
          priority: 2,
          address: WEST,
          api: { port: westApi },
          mqtt: { port: westMqtt },
          cnc: { port: 0 },
        },
      ],
      control: { address: '127.0.0.1', port: await freePort() },
      dns: { address: '127.0.0.1', port: await freePort() },
      analytics: { regionCheck: false },
      // The storm comes from one address: the per-address limit would refuse it before any TLS work.
      broker: { connectionsPerSecondPerAddress: 1_000_000 },
    };
    const configPath = join(home, 'iotdr.yaml');
    await writeFile(configPath, JSON.stringify(raw));
    const config = parseConfig(raw);

    const regions: IotdrProcess[] = [];
    for (const name of ['us-east', 'us-west']) {
      const proc = spawnIotdr(
        ['region', '--name', name, '--config', configPath],
        { IOTDR_HOME: home },
        ROOT,
        {
          group: true,
        },
      );
      regions.push(proc);
      cleanup.push(() => killGroup(proc));
    }
    await waitForHttp(`http://${EAST}:${eastApi}/livez`, regions[0] as IotdrProcess, 60_000);
    await waitForHttp(`http://${WEST}:${westApi}/livez`, regions[1] as IotdrProcess, 60_000);

    const control: RunningControl = await startControl({
      config,
      stateDir: home,
      logger: createLogger({ level: 'silent' }),
    });
    cleanup.push(() => control.stop());
    await eventually(
      async () => control.controller.state().mode.type === 'health',
      'the controller following health',
      20_000,
    );
    expect(control.controller.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });

    // Registered devices, as a console makes them: thing, certificate, policy.
    const token = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://${EAST}:${eastApi}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text.length > 0 ? JSON.parse(text) : undefined;
    };
    await api('PUT', '/v1/policies/storm-device', { policyDocument: DEVICE_POLICY_TEMPLATE() });
    const devices: StormOptions['devices'] = [];
    for (let i = 0; i < DEVICES; i++) {
      const thing = `storm-${i}`;
      await api('PUT', `/v1/things/${thing}`, {});
      const created = await api('POST', '/v1/certificates', {});
      const id = created.certificate.certificateId as string;
      await api('PUT', `/v1/things/${thing}/certificates/${id}`);
      await api('PUT', `/v1/certificates/${id}/policies/storm-device`);
      devices.push({
        clientId: thing,
        certPem: created.certificate.certificatePem,
        keyPem: created.privateKeyPem,
      });
    }

    const options: StormOptions = {
      host: EAST,
      port: eastMqtt,
      servername: 'mqtt.iot.test',
      caPem: await readFile(join(home, 'pki', 'ca.pem'), 'utf8'),
      devices,
      inFlight: IN_FLIGHT,
      durationMs: STORM_MS,
      connectTimeoutMs: 10_000,
    };
    const optionsPath = join(home, 'storm.json');
    await writeFile(optionsPath, JSON.stringify(options), { mode: 0o600 });
    const { spawn } = await import('node:child_process');
    const storm = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('../harness/storm-child.ts', import.meta.url)), optionsPath],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanup.push(() => void storm.kill('SIGKILL'));
    let out = '';
    storm.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const stormEnded = new Promise<void>((resolve) => storm.once('exit', () => resolve()));

    const samples: Sample[] = [];
    let stormDone = false;
    void stormEnded.then(() => {
      stormDone = true;
    });
    while (!stormDone) {
      const at = Date.now();
      const waiting = await gauge(`http://${EAST}:${eastApi}/metrics`, 'iotdr_broker_handshakes_waiting');
      const state = control.controller.state();
      const east = state.regions.find((r) => r.region === 'us-east');
      samples.push({
        at,
        waiting,
        eastStatus: east?.status ?? 'unknown',
        degraded: east?.degraded != null,
        epoch: state.epoch,
      });
      await new Promise((r) => setTimeout(r, Math.max(0, at + SAMPLE_MS - Date.now())));
    }
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as StormResult;

    // The storm was one: devices really connected, and the line stayed full for long enough.
    let fullMs = 0;
    for (let i = 1; i < samples.length; i++) {
      const [prev, cur] = [samples[i - 1] as Sample, samples[i] as Sample];
      if ((cur.waiting ?? 0) > 0) fullMs += cur.at - prev.at;
    }
    const summary = {
      ...result,
      fullLineMs: fullMs,
      maxWaiting: Math.max(...samples.map((s) => s.waiting ?? 0)),
      degradedSamples: samples.filter((s) => s.degraded).length,
      samples: samples.length,
    };
    console.log(`storm into us-east: ${JSON.stringify(summary)}`);
    for (const e of control.controller.events({ limit: 1000, type: 'region-health' }))
      if (e.type === 'region-health' && e.to === 'down') console.log(`region-health: ${JSON.stringify(e)}`);
    // The primary itself lived through it.
    const east = regions[0] as IotdrProcess;
    expect(east.child.exitCode, east.output()).toBeNull();
    expect(east.child.signalCode, east.output()).toBeNull();
    expect(result.connacks).toBeGreaterThan(0);
    expect(fullMs).toBeGreaterThanOrEqual(FULL_LINE_MS);

    // Busy is not dead: never down, never moved, during the storm and once it is over.
    expect(samples.filter((s) => s.eastStatus !== 'up')).toEqual([]);
    expect(samples.every((s) => s.epoch === 0)).toBe(true);
    const lastProbe = control.controller.state().regions[0]?.checkers.control?.lastAt ?? 0;
    await eventually(
      async () => (control.controller.state().regions[0]?.checkers.control?.lastAt ?? 0) > lastProbe,
      'a probe after the storm',
      10_000,
    );
    expect(control.controller.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
    expect(
      control.controller
        .events({ limit: 1000, type: 'region-health' })
        .filter((e) => e.type === 'region-health' && e.to === 'down'),
    ).toEqual([]);
  }, 120_000);
});

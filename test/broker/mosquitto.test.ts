import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectDevice,
  type Device,
  endAll,
  eventually,
  nextMessage,
  provisionDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
} from './support.js';

const PUB = '/usr/bin/mosquitto_pub';
const SUB = '/usr/bin/mosquitto_sub';
const NOT_FOUND = `Debian's mosquitto clients (${PUB}, ${SUB}) are not installed: apt-get install mosquitto-clients`;

/** Skipped with a message when the binaries are missing; with CI=true that is a failure. */
function mosquittoSkipReason(): string | undefined {
  if (existsSync(PUB) && existsSync(SUB)) return undefined;
  if (process.env.CI === 'true') throw new Error(NOT_FOUND);
  return NOT_FOUND;
}

const skip = mosquittoSkipReason();
if (skip !== undefined) console.warn(`skipping the mosquitto client tests: ${skip}`);

(skip === undefined ? describe : describe.skip)('broker: Debian mosquitto clients', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let device: Device;
  let listener: Device;
  const clients: MqttClient[] = [];
  const files = { ca: '', cert: '', key: '' };

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry);
    device = await provisionDevice(registry.service, 'mosq-1');
    // A reader of mosq-1's topics, as an application would be.
    listener = await provisionDevice(registry.service, 'mosq-app', {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/mosq-app' },
        { Effect: 'Allow', Action: ['iot:Subscribe', 'iot:Receive', 'iot:Publish'], Resource: '*' },
      ],
    });
    files.ca = join(registry.dir, 'ca.pem');
    files.cert = join(registry.dir, 'mosq-1.pem');
    files.key = join(registry.dir, 'mosq-1.key');
    await writeFile(files.ca, registry.ca.certificatePem);
    await writeFile(files.cert, device.certPem);
    await writeFile(files.key, device.keyPem, { mode: 0o600 });
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  /** Arguments of a mosquitto client as device mosq-1, verifying the broker by the SAN address 127.0.0.1. */
  function tlsArgs(): string[] {
    return [
      '-h',
      '127.0.0.1',
      '-p',
      String(broker.port),
      '--cafile',
      files.ca,
      '--cert',
      files.cert,
      '--key',
      files.key,
      '-i',
      'mosq-1',
      '-V',
      'mqttv311',
      '-q',
      '1',
    ];
  }

  it('delivers what mosquitto_pub publishes to an mqtt.js subscriber', async () => {
    const app = await connectDevice(broker.port, registry.ca, listener, 'mosq-app');
    clients.push(app);
    expect(await subscribe(app, 'devices/mosq-1/#')).toEqual([1]);
    const got = nextMessage(app, 'devices/mosq-1/telemetry');
    await new Promise<void>((resolve, reject) =>
      execFile(
        PUB,
        [...tlsArgs(), '-t', 'devices/mosq-1/telemetry', '-m', '{"t":21}'],
        (error, _out, stderr) =>
          error ? reject(new Error(`mosquitto_pub failed: ${stderr || error.message}`)) : resolve(),
      ),
    );
    expect((await got).toString()).toBe('{"t":21}');
  });

  it('delivers to mosquitto_sub what a device publishes', async () => {
    const sub = spawn(SUB, [...tlsArgs(), '-t', 'devices/mosq-1/commands', '-C', '1', '-W', '20']);
    let out = '';
    let err = '';
    sub.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    sub.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => sub.once('exit', (code) => resolve(code)));
    try {
      await eventually(
        async () => broker.broker.connections().some((c) => c.clientId === 'mosq-1'),
        'mosquitto_sub connected',
      );
      // Its SUBSCRIBE follows its CONNECT: publish until it has arrived.
      const app = await connectDevice(broker.port, registry.ca, listener, 'mosq-app');
      clients.push(app);
      const timer = setInterval(() => app.publish('devices/mosq-1/commands', 'reboot', { qos: 1 }), 100);
      const code = await exited.finally(() => clearInterval(timer));
      expect({ code, err }).toEqual({ code: 0, err: '' });
      expect(out.trim()).toBe('reboot');
    } finally {
      sub.kill();
    }
  });

  it('refuses mosquitto_pub with a client id outside the policy (CONNACK 5)', async () => {
    const args = tlsArgs();
    args[args.indexOf('-i') + 1] = 'intruder';
    const stderr = await new Promise<string>((resolve) =>
      execFile(PUB, [...args, '-t', 'devices/mosq-1/x', '-m', 'x'], (_e, _o, e) => resolve(e)),
    );
    expect(stderr).toMatch(/not authori[sz]ed/i);
  });
});

/**
 * A reconnect storm, run as a child process so it does not share the test's event loop: `inFlight`
 * devices at once, each connecting (TCP, a full mutual-TLS handshake, MQTT CONNECT, CONNACK),
 * closing and connecting again at once, until `durationMs` has passed or it gets SIGTERM. No SDK,
 * no backoff: the most a fleet coming back at once can ask of a broker. Prints one JSON line of
 * counts at the end.
 *
 * Usage: node --import tsx storm-child.ts OPTIONS.json
 */
import { readFileSync } from 'node:fs';
import { connect, createSecureContext, type SecureContext } from 'node:tls';

export interface StormOptions {
  host: string;
  port: number;
  servername: string;
  caPem: string;
  devices: Array<{ clientId: string; certPem: string; keyPem: string }>;
  inFlight: number;
  durationMs: number;
  /** Gives up on one connection after this, ms. */
  connectTimeoutMs: number;
}

export interface StormResult {
  connacks: number;
  refused: number;
  errors: number;
  timeouts: number;
}

/** MQTT 3.1.1 CONNECT with a clean session, 60 s keep-alive and this client id [MQTT-3.1]. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId, 'utf8');
  const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60]);
  const payload = Buffer.concat([Buffer.from([id.length >> 8, id.length & 0xff]), id]);
  const remaining = variable.length + payload.length;
  const length: number[] = [];
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x10, ...length]), variable, payload]);
}

function once(
  options: StormOptions,
  context: SecureContext,
  device: StormOptions['devices'][number],
): Promise<keyof StormResult> {
  return new Promise((resolve) => {
    let settled = false;
    const socket = connect({
      host: options.host,
      port: options.port,
      servername: options.servername,
      secureContext: context,
      // The storm is load on the broker: the devices' side skips verifying its chain, the costliest
      // part of a client's handshake, so two processes outpace one broker.
      rejectUnauthorized: false,
    });
    const finish = (how: keyof StormResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(how);
    };
    const timer = setTimeout(() => finish('timeouts'), options.connectTimeoutMs);
    socket.once('secureConnect', () => socket.write(connectPacket(device.clientId)));
    socket.on('data', (data: Buffer) => {
      // CONNACK: 0x20 0x02 flags code [MQTT-3.2]
      if (data[0] === 0x20 && data.length >= 4) finish(data[3] === 0 ? 'connacks' : 'refused');
    });
    socket.once('error', () => finish('errors'));
    socket.once('close', () => finish('errors'));
  });
}

async function main(): Promise<void> {
  const options = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as StormOptions;
  const contexts = options.devices.map((d) =>
    createSecureContext({ ca: [options.caPem], cert: d.certPem, key: d.keyPem }),
  );
  const result: StormResult = { connacks: 0, refused: 0, errors: 0, timeouts: 0 };
  const end = Date.now() + options.durationMs;
  let next = 0;
  const loop = async () => {
    while (Date.now() < end) {
      const i = next++ % options.devices.length;
      result[
        await once(
          options,
          contexts[i] as SecureContext,
          options.devices[i] as StormOptions['devices'][number],
        )
      ]++;
    }
  };
  // SIGTERM ends the storm early: the counts so far are the result.
  process.once('SIGTERM', () => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  });
  await Promise.all(Array.from({ length: options.inFlight }, loop));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();

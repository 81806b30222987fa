/**
 * TLS session resumption between brokers: real brokers on ephemeral ports (each its own listener),
 * one registry and one state directory, real mutual TLS and MQTT from mqtt.js. Each broker has its
 * own clock, moved by the tests across ticket key periods.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import {
  type AddressInfo,
  createServer as createTcpServer,
  type Socket,
  connect as tcpConnect,
} from 'node:net';
import type { TLSSocket } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TICKET_ROTATE_MS } from '../../src/broker/index.js';
import type { Clock } from '../../src/common/index.js';
import { ConfigError } from '../../src/common/index.js';
import { tlsTicketSecretPath } from '../../src/config/index.js';
import { loadOrCreateTlsTicketSecret } from '../../src/processes/index.js';
import {
  type Device,
  endAll,
  eventually,
  provisionDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
  ZONE,
} from './support.js';

const PERIOD = DEFAULT_TICKET_ROTATE_MS;

class TestClock implements Clock {
  #now = Date.now();
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
  set(ms: number): void {
    this.#now = ms;
  }
}

type Auth = { cert: string; key: string } | { username: string; password: string };

interface Opened {
  /** 'connected', a CONNACK return code, or what ended the attempt. */
  outcome: 'connected' | number | string;
  client: MqttClient;
  /** The client's view: isSessionReused() once TLS was up. */
  resumed: boolean | undefined;
  /** Sessions the broker gave this connection, newest last. */
  sessions: Buffer[];
}

describe('broker: TLS session resumption across brokers', () => {
  let registry: TestRegistry;
  const clocks = { a: new TestClock(), b: new TestClock(), other: new TestClock() };
  let a: TestBroker;
  let b: TestBroker;
  let other: TestBroker;
  let device: Device;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    // As two region processes starting together from one state directory.
    const [secretA, secretB] = await Promise.all([
      loadOrCreateTlsTicketSecret(registry.dir),
      loadOrCreateTlsTicketSecret(registry.dir),
    ]);
    expect(secretA.equals(secretB)).toBe(true);
    const tokenListener = { port: 0 };
    a = await startBroker(registry, {
      region: 'us-east',
      clock: clocks.a,
      tlsTickets: { secret: secretA },
      tokenListener,
    });
    b = await startBroker(registry, {
      region: 'us-west',
      clock: clocks.b,
      tlsTickets: { secret: secretB },
      tokenListener,
    });
    other = await startBroker(registry, {
      region: 'elsewhere',
      clock: clocks.other,
      tlsTickets: { secret: Buffer.alloc(32, 7) },
    });
    device = await provisionDevice(registry.service, 'meter-1');
  });
  beforeEach(() => {
    // Every test starts with the brokers' clocks together; each moves them as it needs.
    clocks.b.set(clocks.a.now());
    clocks.other.set(clocks.a.now());
  });
  afterAll(async () => {
    await endAll(clients);
    await Promise.all([a?.close(), b?.close(), other?.close()]);
    await registry?.close();
  });

  /** Connects as a device does, offering `session`; resolves once CONNACK (or the refusal) came. */
  async function open(
    port: number,
    auth: Auth,
    clientId: string,
    session?: Buffer,
    tls: { maxVersion?: 'TLSv1.2' } = {},
  ): Promise<Opened> {
    const options: IClientOptions & { session?: Buffer; maxVersion?: string } = {
      protocol: 'mqtts',
      host: '127.0.0.1',
      port,
      servername: `mqtt.${ZONE}`,
      ca: registry.ca.certificatePem,
      rejectUnauthorized: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      protocolVersion: 4,
      clientId,
      ...auth,
      ...tls,
      ...(session === undefined ? {} : { session }),
    };
    const client = mqtt.connect(options);
    clients.push(client);
    const socket = client.stream as unknown as TLSSocket;
    const seen: Pick<Opened, 'resumed' | 'sessions'> = { resumed: undefined, sessions: [] };
    socket.on('session', (s: Buffer) => seen.sessions.push(s));
    socket.once('secureConnect', () => {
      seen.resumed = socket.isSessionReused();
    });
    const outcome = await new Promise<Opened['outcome']>((resolve) => {
      client.once('connect', () => resolve('connected'));
      client.once('error', (e: Error & { code?: unknown }) =>
        resolve(typeof e.code === 'number' ? e.code : e.message),
      );
      client.once('close', () => resolve('closed'));
    });
    // Read when asked: a TLS 1.3 ticket may come after CONNACK.
    return {
      outcome,
      client,
      get resumed() {
        return seen.resumed;
      },
      sessions: seen.sessions,
    };
  }

  const mtls = (d: Device): Auth => ({ cert: d.certPem, key: d.keyPem });

  /** A session from a full handshake with `broker`, CONNACK accepted. */
  async function freshSession(broker: TestBroker, d = device): Promise<Buffer> {
    const first = await open(broker.port, mtls(d), d.thingName);
    expect(first.outcome).toBe('connected');
    expect(first.resumed).toBe(false);
    await eventually(async () => first.sessions.length > 0, 'a session ticket');
    await first.client.endAsync(true);
    return first.sessions.at(-1) as Buffer;
  }

  /** The broker's own count of handshakes (its side of isSessionReused). */
  async function handshakes(broker: TestBroker, session: 'full' | 'resumed', listener = 'mtls') {
    const metric = await broker.metrics.getSingleMetric('iotdr_broker_tls_handshakes_total')?.get();
    const value = metric?.values.find((v) => v.labels.session === session && v.labels.listener === listener);
    return value?.value ?? 0;
  }

  it('resumes on another broker (its own listener, same state directory) a session made with the first', async () => {
    const session = await freshSession(a);
    const resumedBefore = await handshakes(b, 'resumed');
    const second = await open(b.port, mtls(device), device.thingName, session);
    expect(second.outcome).toBe('connected');
    expect(second.resumed).toBe(true);
    expect(await handshakes(b, 'resumed')).toBe(resumedBefore + 1);
    // The session acts as its certificate's thing: the device policy's variables resolved.
    expect(await subscribe(second.client, `devices/${device.thingName}/#`)).toEqual([1]);
    expect(await subscribe(second.client, 'devices/someone-else/#')).toEqual([128]);
    await second.client.endAsync(true);
  });

  it('resumes a TLS 1.2 session (session_ticket) on another broker, its certificate judged at CONNECT', async () => {
    const tls12 = { maxVersion: 'TLSv1.2' as const };
    const first = await open(a.port, mtls(device), device.thingName, undefined, tls12);
    expect(first.outcome).toBe('connected');
    await eventually(async () => first.sessions.length > 0, 'a session ticket');
    await first.client.endAsync(true);
    const second = await open(b.port, mtls(device), device.thingName, first.sessions.at(-1), tls12);
    expect(second.resumed).toBe(true);
    expect(second.outcome).toBe('connected');
    expect(await subscribe(second.client, `devices/${device.thingName}/#`)).toEqual([1]);
    await second.client.endAsync(true);
  });

  it("accepts the previous period's ticket after a rotation", async () => {
    const session = await freshSession(a);
    clocks.a.advance(PERIOD);
    clocks.b.advance(PERIOD);
    const later = await open(b.port, mtls(device), device.thingName, session);
    expect(later.outcome).toBe('connected');
    expect(later.resumed).toBe(true);
    await later.client.endAsync(true);
  });

  it('accepts a ticket sealed a period ahead (a broker whose clock is past the rotation already)', async () => {
    clocks.a.advance(PERIOD);
    const session = await freshSession(a);
    const behind = await open(b.port, mtls(device), device.thingName, session);
    expect(behind.resumed).toBe(true);
    expect(behind.outcome).toBe('connected');
    await behind.client.endAsync(true);
  });

  it('makes a full handshake for a ticket two periods old, and the device still connects', async () => {
    const session = await freshSession(a);
    clocks.a.advance(2 * PERIOD);
    clocks.b.advance(2 * PERIOD);
    const fullBefore = await handshakes(b, 'full');
    const late = await open(b.port, mtls(device), device.thingName, session);
    expect(late.resumed).toBe(false);
    expect(late.outcome).toBe('connected');
    expect(await handshakes(b, 'full')).toBe(fullBefore + 1);
    await late.client.endAsync(true);
  });

  it('makes a full handshake with a broker that has another secret, and the device still connects', async () => {
    const session = await freshSession(a);
    const elsewhere = await open(other.port, mtls(device), device.thingName, session);
    expect(elsewhere.resumed).toBe(false);
    expect(elsewhere.outcome).toBe('connected');
    await elsewhere.client.endAsync(true);
  });

  it('refuses a revoked certificate on a resumed session (CONNACK 5), as on a full handshake', async () => {
    const revoked = await provisionDevice(registry.service, 'meter-revoked');
    const session = await freshSession(a, revoked);
    await registry.service.updateCertificateStatus(revoked.certificateId, { status: 'REVOKED' });
    const resumedBefore = await handshakes(b, 'resumed');
    const again = await open(b.port, mtls(revoked), revoked.thingName, session);
    expect(again.resumed).toBe(true);
    expect(await handshakes(b, 'resumed')).toBe(resumedBefore + 1);
    expect(again.outcome).toBe(5);
    const full = await open(b.port, mtls(revoked), revoked.thingName);
    expect(full.resumed).toBe(false);
    expect(full.outcome).toBe(5);
  });

  it('resumes token sessions across token listeners, and never an mTLS session on a token listener', async () => {
    const thing = 'meter-token';
    await registry.service.putThing(thing, {});
    const { token } = await registry.service.createDeviceToken(thing, ['meter-1-policy']);
    const tokenPort = (broker: TestBroker) => broker.addresses.token?.port ?? 0;
    const auth: Auth = { username: thing, password: token };
    const first = await open(tokenPort(a), auth, thing);
    expect(first.outcome).toBe('connected');
    expect(first.resumed).toBe(false);
    await eventually(async () => first.sessions.length > 0, 'a session ticket');
    await first.client.endAsync(true);
    const second = await open(tokenPort(b), auth, thing, first.sessions.at(-1));
    expect(second.outcome).toBe('connected');
    expect(second.resumed).toBe(true);
    expect(await handshakes(b, 'resumed', 'token')).toBeGreaterThanOrEqual(1);
    await second.client.endAsync(true);
    // Another listener kind is another session context: full handshake, token auth as ever.
    const mtlsSession = await freshSession(a);
    const crossed = await open(tokenPort(b), auth, thing, mtlsSession);
    expect(crossed.resumed).toBe(false);
    expect(crossed.outcome).toBe('connected');
    await crossed.client.endAsync(true);
  });
});

describe('broker: reading the ClientHello before TLS', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let device: Device;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry, { limits: { connectTimeoutMs: 500 } });
    device = await provisionDevice(registry.service, 'meter-2');
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  async function refusedHandshakes(): Promise<number> {
    const metric = await broker.metrics.getSingleMetric('iotdr_broker_refusals_total')?.get();
    return metric?.values.find((v) => v.labels.reason === 'tls_handshake')?.value ?? 0;
  }

  function rawConnection(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: '127.0.0.1', port }, () => resolve(socket));
      socket.on('error', reject);
    });
  }

  function closedPromise(socket: Socket): Promise<void> {
    return new Promise((resolve) => {
      if (socket.destroyed) resolve();
      socket.once('close', () => resolve());
    });
  }

  it('closes a connection that sends only part of a ClientHello, at the handshake timeout', async () => {
    const before = await refusedHandshakes();
    const socket = await rawConnection(broker.port);
    // A record header announcing 512 bytes, a handshake header, and then nothing more.
    socket.write(Buffer.from([22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3]));
    await closedPromise(socket);
    expect(await refusedHandshakes()).toBe(before + 1);
  });

  it('closes a connection that sends no ClientHello at all, at the handshake timeout', async () => {
    const before = await refusedHandshakes();
    const socket = await rawConnection(broker.port);
    await closedPromise(socket);
    expect(await refusedHandshakes()).toBe(before + 1);
  });

  it('hands what is no ClientHello to TLS, which refuses it', async () => {
    const before = await refusedHandshakes();
    const socket = await rawConnection(broker.port);
    socket.on('data', () => {});
    socket.write('GET / HTTP/1.1\r\nHost: mqtt.iot.test\r\n\r\n');
    await closedPromise(socket);
    expect(await refusedHandshakes()).toBe(before + 1);
  });

  it('resumes a session whose ClientHello arrives in small pieces', async () => {
    // A relay that passes the client's first bytes on 7 at a time, then everything as it comes.
    const relay = createTcpServer((down) => {
      const up = tcpConnect({ host: '127.0.0.1', port: broker.port });
      up.setNoDelay(true);
      up.on('error', () => down.destroy());
      down.on('error', () => up.destroy());
      up.pipe(down);
      down.once('data', async (first: Buffer) => {
        down.pause();
        for (let at = 0; at < first.length; at += 7) {
          up.write(first.subarray(at, at + 7));
          await new Promise((r) => setTimeout(r, 2));
        }
        down.pipe(up);
        down.resume();
      });
    });
    relay.listen(0, '127.0.0.1');
    await new Promise((r) => relay.once('listening', r));
    try {
      const port = (relay.address() as AddressInfo).port;
      const options = {
        protocol: 'mqtts' as const,
        host: '127.0.0.1',
        servername: `mqtt.${ZONE}`,
        ca: registry.ca.certificatePem,
        cert: device.certPem,
        key: device.keyPem,
        reconnectPeriod: 0,
        protocolVersion: 4 as const,
        clientId: device.thingName,
      };
      const connected = (client: MqttClient) =>
        new Promise<void>((resolve, reject) => {
          client.once('connect', () => resolve());
          client.once('error', reject);
          client.once('close', () => reject(new Error('closed before CONNACK')));
        });
      const first = mqtt.connect({ ...options, port });
      clients.push(first);
      const sessions: Buffer[] = [];
      (first.stream as unknown as TLSSocket).on('session', (s: Buffer) => sessions.push(s));
      await connected(first);
      await eventually(async () => sessions.length > 0, 'a session ticket');
      await first.endAsync(true);
      const second = mqtt.connect({ ...options, port, session: sessions.at(-1) } as IClientOptions);
      clients.push(second);
      await connected(second);
      expect((second.stream as unknown as TLSSocket).isSessionReused()).toBe(true);
      await second.endAsync(true);
    } finally {
      relay.close();
    }
  });
});

describe('the ticket secret in the state directory', () => {
  let registry: TestRegistry;

  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('is made once, 0600, by processes racing to make it, and read back unchanged', async () => {
    const secrets = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateTlsTicketSecret(registry.dir)),
    );
    for (const s of secrets) expect(s.equals(secrets[0] as Buffer)).toBe(true);
    expect(secrets[0]?.length).toBe(32);
    const path = tlsTicketSecretPath(registry.dir);
    if (process.platform !== 'win32') expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(Buffer.from((await readFile(path, 'utf8')).trim(), 'base64url').equals(secrets[0] as Buffer)).toBe(
      true,
    );
    expect((await loadOrCreateTlsTicketSecret(registry.dir)).equals(secrets[0] as Buffer)).toBe(true);
  });

  it('refuses a file that holds no secret, naming the file and what would do', async () => {
    const path = tlsTicketSecretPath(registry.dir);
    await writeFile(path, 'too-short\n', { mode: 0o600 });
    const error = await loadOrCreateTlsTicketSecret(registry.dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('IOTDR_CONFIG_INVALID');
    expect((error as ConfigError).issues[0]?.path).toBe(path);
    expect((error as ConfigError).message).toContain('at least 32 random bytes in base64url');
  });
});

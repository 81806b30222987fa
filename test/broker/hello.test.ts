/**
 * The ClientHello reader on real ClientHellos from Node's own TLS client (TLS 1.3 and 1.2, with
 * and without a ticket from a real server), and on what an attacker may send instead: truncated,
 * re-framed, oversized, corrupted or random bytes.
 */
import { once } from 'node:events';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { type ConnectionOptions, connect, createServer as createTlsServer } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type HelloPeek,
  MAX_CLIENT_HELLO_BYTES,
  MAX_CLIENT_HELLO_RECORDS,
  peekTicket,
} from '../../src/broker/hello.js';
import { selfSignedDevice } from './support.js';

type Version = 'TLSv1.3' | 'TLSv1.2';

/** The bytes a TLS client sends first: its ClientHello (one record, as Node sends it). */
async function captureClientHello(options: ConnectionOptions): Promise<Buffer> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const captured = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      let bytes = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        bytes = Buffer.concat([bytes, chunk]);
        // Read by hand here, so the capture does not trust the code under test.
        if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt16BE(3)) {
          resolve(bytes);
          socket.destroy();
        }
      });
    });
  });
  const client = connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    servername: 'mqtt.iot.test',
    rejectUnauthorized: false,
    ...options,
  });
  client.on('error', () => {});
  try {
    return await captured;
  } finally {
    client.destroy();
    server.close();
  }
}

/** A session (its ticket) from a real TLS server whose ticket key is `ticketKeys`. */
async function sessionFrom(
  identity: { certPem: string; keyPem: string },
  ticketKeys: Buffer,
  maxVersion: Version,
): Promise<Buffer> {
  const server = createTlsServer({ cert: identity.certPem, key: identity.keyPem, ticketKeys }, (s) =>
    s.end('hi'),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    servername: 'mqtt.iot.test',
    rejectUnauthorized: false,
    maxVersion,
  });
  client.on('data', () => {});
  try {
    const [session] = (await once(client, 'session')) as [Buffer];
    return session;
  } finally {
    client.destroy();
    server.close();
  }
}

/** The handshake message of a one-record ClientHello, framed again in records of `size` bytes. */
function reframe(hello: Buffer, size: number): Buffer {
  const handshake = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let at = 0; at < handshake.length; at += size) {
    const fragment = handshake.subarray(at, at + size);
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(fragment.length, 3);
    records.push(header, fragment);
  }
  return Buffer.concat(records);
}

/** A small seeded generator, so a failing input can be found again. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Calls peekTicket and checks the answer is one it may give. */
function judged(bytes: Uint8Array): HelloPeek {
  const found = peekTicket(bytes);
  expect(['more', 'ticket', 'none']).toContain(found.type);
  if (found.type === 'ticket') expect(found.keyName).toHaveLength(16);
  return found;
}

describe('ClientHello reader', () => {
  const ticketKeys = Buffer.from(Array.from({ length: 48 }, (_, i) => i + 1));
  const keyName = ticketKeys.subarray(0, 16);
  const hellos = {} as Record<'plain13' | 'ticket13' | 'plain12' | 'ticket12', Buffer>;

  beforeAll(async () => {
    const server = await selfSignedDevice('mqtt.iot.test');
    const session13 = await sessionFrom(server, ticketKeys, 'TLSv1.3');
    const session12 = await sessionFrom(server, ticketKeys, 'TLSv1.2');
    hellos.plain13 = await captureClientHello({});
    hellos.ticket13 = await captureClientHello({ session: session13 });
    hellos.plain12 = await captureClientHello({ maxVersion: 'TLSv1.2' });
    hellos.ticket12 = await captureClientHello({ maxVersion: 'TLSv1.2', session: session12 });
  });

  it("finds the key name of a TLS 1.3 client's ticket in its first pre_shared_key identity", () => {
    expect(peekTicket(hellos.ticket13)).toEqual({ type: 'ticket', keyName, extension: 'pre_shared_key' });
  });

  it("finds the key name of a TLS 1.2 client's ticket in its session_ticket extension", () => {
    expect(peekTicket(hellos.ticket12)).toEqual({ type: 'ticket', keyName, extension: 'session_ticket' });
  });

  it('finds no ticket in a ClientHello that offers none (TLS 1.3 and 1.2)', () => {
    expect(peekTicket(hellos.plain13)).toEqual({ type: 'none', why: 'no ticket' });
    // Node's TLS 1.2 client sends an empty session_ticket extension: it asks for a ticket, offers none.
    expect(peekTicket(hellos.plain12)).toEqual({ type: 'none', why: 'no ticket' });
  });

  it('asks for more on every truncation of a real ClientHello, never past its end', () => {
    for (const hello of Object.values(hellos)) {
      for (let n = 0; n < hello.length; n++) {
        const found = judged(hello.subarray(0, n));
        expect(found.type, `prefix of ${n} bytes`).toBe('more');
        if (found.type === 'more') {
          expect(found.atLeast).toBeGreaterThan(n);
          expect(found.atLeast).toBeLessThanOrEqual(hello.length);
        }
      }
    }
  });

  it('reads a ClientHello framed over several records, up to the record ceiling', () => {
    const size = Math.ceil((hellos.ticket13.length - 5) / MAX_CLIENT_HELLO_RECORDS);
    const split = reframe(hellos.ticket13, size);
    expect(peekTicket(split)).toMatchObject({ type: 'ticket', keyName });
    for (let n = 0; n < split.length; n++) expect(judged(split.subarray(0, n)).type).toBe('more');
    // A hello in many tiny records is not worth reading ahead: TLS gets it whole all the same.
    expect(peekTicket(reframe(hellos.ticket13, 16))).toEqual({ type: 'none', why: 'too large' });
  });

  it('ignores what follows the ClientHello', () => {
    const more = Buffer.concat([hellos.ticket13, Buffer.from([23, 3, 3, 0, 5, 1, 2, 3, 4, 5])]);
    expect(peekTicket(more)).toMatchObject({ type: 'ticket', keyName });
  });

  it('answers at once, without waiting, for what is no ClientHello', () => {
    expect(peekTicket(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ type: 'none', why: 'not a ClientHello' });
    expect(peekTicket(Buffer.from([0x10]))).toEqual({ type: 'none', why: 'not a ClientHello' }); // MQTT CONNECT
    expect(peekTicket(Buffer.from([22, 5, 1, 0, 10]))).toEqual({ type: 'none', why: 'not a ClientHello' });
    expect(peekTicket(Buffer.from([22, 3, 1, 0, 0]))).toEqual({ type: 'none', why: 'malformed' });
    expect(peekTicket(Buffer.from([22, 3, 1, 0x40, 0x01]))).toEqual({ type: 'none', why: 'malformed' });
    // A ServerHello (type 2) where a ClientHello belongs.
    expect(peekTicket(Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0]))).toEqual({
      type: 'none',
      why: 'not a ClientHello',
    });
  });

  it('does not wait for a ClientHello announced larger than the ceiling (nothing is sized by it)', () => {
    const huge = Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff]);
    expect(peekTicket(huge)).toEqual({ type: 'none', why: 'too large' });
    const justOver = Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0, 0, 0]);
    justOver.writeUIntBE(MAX_CLIENT_HELLO_BYTES + 1, 6, 3);
    expect(peekTicket(justOver)).toEqual({ type: 'none', why: 'too large' });
  });

  it('answers none for a complete ClientHello whose inner lengths lie', () => {
    const hello = hellos.ticket13;
    // legacy_session_id length (after record 5, handshake 4, version 2, random 32) claims 255 bytes.
    const sessionId = Buffer.from(hello);
    sessionId[5 + 4 + 2 + 32] = 0xff;
    expect(peekTicket(sessionId).type).toBe('none');
    // The identities of pre_shared_key (the last extension) claim 65,535 bytes.
    const psk = Buffer.from(hello);
    const at = psk.lastIndexOf(Buffer.from([0x00, 0x29]));
    psk.writeUInt16BE(0xffff, at + 4);
    expect(peekTicket(psk)).toEqual({ type: 'none', why: 'malformed' });
  });

  it('never throws on corrupted ClientHellos: every byte of a real one set to 0x00 and to 0xff', () => {
    for (const hello of [hellos.ticket13, hellos.ticket12]) {
      for (let i = 0; i < hello.length; i++) {
        for (const value of [0x00, 0xff]) {
          const bad = Buffer.from(hello);
          bad[i] = value;
          judged(bad);
        }
      }
    }
  });

  it('never throws on random bytes, whether or not they begin like a ClientHello', () => {
    const next = random(20_240_601);
    for (let round = 0; round < 20_000; round++) {
      const bytes = Buffer.alloc(Math.floor(next() * 600));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      if (round % 2 === 0 && bytes.length > 9) {
        // A valid record and handshake header in front, random lengths after.
        bytes.set([22, 3, 1], 0);
        bytes[5] = 1;
      }
      judged(bytes);
    }
  });
});

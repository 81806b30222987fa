/** Helpers for the DNS tests: a server on an ephemeral port, raw UDP/TCP clients, node's resolver and dig. */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import dnsPacket, { type DecodedPacket, type Packet } from 'dns-packet';
import { DnsEngine, DnsServer, type DnsServerOptions, type DnsStateInput } from '../../src/dns/index.js';
import { executable, skipReason } from '../harness/binaries.js';

const run = promisify(execFile);
const DIG = '/usr/bin/dig';
const DIG_MISSING = 'dig not found: apt-get install dnsutils';

export const BASE_STATE = {
  zone: 'iot.test',
  ttl: 5,
  names: { mqtt: 'mqtt', api: 'api', extra: [] as string[] },
  nameservers: [{ name: 'ns', address: '127.0.0.1' }],
} satisfies DnsStateInput;

export const PRIMARY = { region: 'primary', address: '127.0.0.11', epoch: 1 } as const;
export const SECONDARY = { region: 'secondary', address: '127.0.0.12', epoch: 2 } as const;

export interface RunningDns {
  engine: DnsEngine;
  server: DnsServer;
  port: number;
  close(): Promise<void>;
}

export async function startDns(
  state: DnsStateInput = { ...BASE_STATE, active: PRIMARY },
  options: Omit<DnsServerOptions, 'engine'> = {},
): Promise<RunningDns> {
  const engine = new DnsEngine({ state });
  const server = new DnsServer({ engine, host: '127.0.0.1', port: 0, ...options });
  const { port } = await server.listen();
  return { engine, server, port, close: () => server.close() };
}

/** node's resolver (c-ares) pointed at the test server only, failing fast. */
export function resolverFor(port: number): Resolver {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([`127.0.0.1:${port}`]);
  return resolver;
}

export function query(name: string, type: string, extra: Partial<Packet> = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: extra.id ?? Math.floor(Math.random() * 65_535),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A' }],
    ...extra,
  });
}

export function opt(udpPayloadSize: number, ednsVersion = 0): NonNullable<Packet['additionals']>[number] {
  return {
    name: '.',
    type: 'OPT',
    udpPayloadSize,
    extendedRcode: 0,
    ednsVersion,
    flags: 0,
    flag_do: false,
    options: [],
  };
}

export type Decoded = DecodedPacket & { rcode: string; id: number };

export function decode(buf: Buffer): Decoded {
  return dnsPacket.decode(buf) as Decoded;
}

/**
 * Sends the packets over one UDP socket, in order, and collects the responses until one with
 * `untilId` arrives: a dropped packet is proven dropped by a later query being answered first.
 */
export async function udpExchange(port: number, packets: Buffer[], untilId: number): Promise<Buffer[]> {
  const socket = createSocket('udp4');
  try {
    return await new Promise<Buffer[]>((resolve, reject) => {
      const got: Buffer[] = [];
      const timer = setTimeout(() => reject(new Error(`no UDP answer with id ${untilId}`)), 5000);
      socket.on('message', (message) => {
        got.push(message);
        if (message.length >= 2 && message.readUInt16BE(0) === untilId) {
          clearTimeout(timer);
          resolve(got);
        }
      });
      socket.on('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        for (const p of packets) socket.send(p, port, '127.0.0.1');
      });
    });
  } finally {
    socket.close();
  }
}

export async function udpQuery(port: number, packet: Buffer): Promise<Decoded> {
  const id = packet.readUInt16BE(0);
  const [answer] = (await udpExchange(port, [packet], id)).filter((b) => b.readUInt16BE(0) === id);
  if (!answer) throw new Error('no answer');
  return decode(answer);
}

function frame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length);
  return Buffer.concat([prefix, message]);
}

/** Opens one TCP connection, writes every message framed (all at once), reads `expect` answers. */
export async function tcpExchange(port: number, messages: Buffer[], expect: number): Promise<Buffer[]> {
  const socket = connect({ host: '127.0.0.1', port });
  try {
    return await new Promise<Buffer[]>((resolve, reject) => {
      const answers: Buffer[] = [];
      let buffered = Buffer.alloc(0);
      const timer = setTimeout(
        () => reject(new Error(`got ${answers.length} of ${expect} TCP answers`)),
        5000,
      );
      socket.on('connect', () => socket.write(Buffer.concat(messages.map(frame))));
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          answers.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        }
        if (answers.length >= expect) {
          clearTimeout(timer);
          resolve(answers);
        }
      });
      socket.on('error', reject);
    });
  } finally {
    socket.destroy();
  }
}

/** Why dig tests cannot run, or undefined; throws with CI=true so CI never goes green by skipping. */
export function digSkipReason(): string | undefined {
  return skipReason(executable(DIG), DIG_MISSING);
}

/** Runs Debian's dig against the test server; returns stdout. */
export async function dig(port: number, args: string[], server = '127.0.0.1'): Promise<string> {
  const { stdout } = await run(DIG, [`@${server}`, '-p', String(port), '+time=2', '+tries=1', ...args]);
  return stdout;
}

/** The built-in server over real sockets, queried by node's resolver (c-ares), dig, and raw packets. */
import dnsPacket from 'dns-packet';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Timers } from '../../src/dns/index.js';
import {
  BASE_STATE,
  decode,
  dig,
  digSkipReason,
  opt,
  PRIMARY,
  query,
  type RunningDns,
  resolverFor,
  SECONDARY,
  startDns,
  tcpExchange,
  udpExchange,
  udpQuery,
} from './support.js';

const NAMESERVERS = Array.from({ length: 40 }, (_, i) => ({ name: `ns${i}`, address: `127.0.1.${i + 1}` }));

describe('DnsServer over UDP and TCP', () => {
  let dns: RunningDns;
  const registry = new Registry();

  beforeAll(async () => {
    dns = await startDns({ ...BASE_STATE, active: PRIMARY }, { registry });
  });
  afterAll(async () => {
    await dns.close();
  });

  it('answers A, TXT, SOA and NS to node’s resolver, and moves the answer when the state changes', async () => {
    const resolver = resolverFor(dns.port);
    expect(await resolver.resolve4('mqtt.iot.test', { ttl: true })).toEqual([
      { address: PRIMARY.address, ttl: 5 },
    ]);
    expect(await resolver.resolve4('api.iot.test')).toEqual([PRIMARY.address]);
    expect(await resolver.resolveTxt('_iotdr.mqtt.iot.test')).toEqual([['region=primary epoch=1']]);
    expect(await resolver.resolveSoa('iot.test')).toEqual(
      expect.objectContaining({
        nsname: 'ns.iot.test',
        hostmaster: 'hostmaster.iot.test',
        serial: 1,
        minttl: 5,
      }),
    );
    expect(await resolver.resolveNs('iot.test')).toEqual(['ns.iot.test']);

    dns.engine.setState({ ...dns.engine.state, active: SECONDARY });
    expect(await resolver.resolve4('mqtt.iot.test')).toEqual([SECONDARY.address]);
    expect(await resolver.resolveTxt('_iotdr.mqtt.iot.test')).toEqual([['region=secondary epoch=2']]);
    dns.engine.setState({ ...dns.engine.state, active: PRIMARY });
  });

  it('answers NXDOMAIN in the zone, NODATA for the other address type, REFUSED outside', async () => {
    const resolver = resolverFor(dns.port);
    await expect(resolver.resolve4('nothing.iot.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolver.resolve6('mqtt.iot.test')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(resolver.resolve4('example.com')).rejects.toMatchObject({ code: 'EREFUSED' });
  });

  it('truncates a large answer over UDP; the resolver retries over TCP and gets it all', async () => {
    dns.engine.setState({ ...dns.engine.state, nameservers: NAMESERVERS });
    try {
      const udp = await udpQuery(dns.port, query('iot.test', 'NS'));
      expect(udp.flag_tc).toBe(true);
      expect(udp.answers).toEqual([]);
      const [tcp] = await tcpExchange(dns.port, [query('iot.test', 'NS')], 1);
      expect(decode(tcp ?? Buffer.alloc(0)).answers).toHaveLength(40);
      // c-ares sees TC and repeats the query over TCP by itself.
      expect(await resolverFor(dns.port).resolveNs('iot.test')).toHaveLength(40);
    } finally {
      dns.engine.setState({ ...dns.engine.state, nameservers: BASE_STATE.nameservers });
    }
  });

  it('answers several queries on one TCP connection, in order, across split frames', async () => {
    const ids = [11, 12, 13];
    const answers = await tcpExchange(
      dns.port,
      [
        query('mqtt.iot.test', 'A', { id: 11 }),
        Buffer.from('bad'),
        query('api.iot.test', 'A', { id: 12 }),
        query('example.com', 'A', { id: 13 }),
      ],
      3,
    );
    expect(answers.map((a) => decode(a).id)).toEqual(ids);
    expect(answers.map((a) => decode(a).rcode)).toEqual(['NOERROR', 'NOERROR', 'REFUSED']);
  });

  it('drops or FORMERRs malformed packets over UDP and keeps answering', async () => {
    const good = query('mqtt.iot.test', 'A', { id: 900 });
    const twoQuestions = dnsPacket.encode({
      type: 'query',
      id: 901,
      questions: [
        { name: 'mqtt.iot.test', type: 'A' },
        { name: 'api.iot.test', type: 'A' },
      ],
    });
    const truncatedQuestion = Buffer.from(query('mqtt.iot.test', 'A', { id: 902 }).subarray(0, 20));
    const qrSet = dnsPacket.encode({
      type: 'response',
      id: 903,
      questions: [{ name: 'mqtt.iot.test', type: 'A' }],
    });
    const got = await udpExchange(
      dns.port,
      [Buffer.from('\x00\x01garbage'), Buffer.from([1, 2, 3]), qrSet, twoQuestions, truncatedQuestion, good],
      900,
    );
    const byId = new Map(got.map((b) => [b.readUInt16BE(0), decode(b)]));
    expect(byId.get(901)?.rcode).toBe('FORMERR');
    expect(byId.get(902)?.rcode).toBe('FORMERR');
    // Garbage of 9 bytes and 3 bytes has no header; a response is never answered.
    expect(byId.has(903)).toBe(false);
    expect([...byId.keys()].sort()).toEqual([900, 901, 902]);
    expect(byId.get(900)?.answers?.[0]).toEqual(expect.objectContaining({ data: PRIMARY.address }));
    expect(await resolverFor(dns.port).resolve4('mqtt.iot.test')).toEqual([PRIMARY.address]);
  });

  it('counts queries by type and rcode', async () => {
    await resolverFor(dns.port).resolve4('mqtt.iot.test');
    const text = await registry.metrics();
    expect(text).toMatch(/iotdr_dns_queries_total\{transport="udp",type="A",rcode="NOERROR"\} \d+/);
    expect(text).toMatch(/iotdr_dns_queries_total\{transport="udp",type="A",rcode="REFUSED"\} \d+/);
    expect(text).toMatch(/iotdr_dns_dropped_total\{transport="udp",reason="short"\} 2/);
    expect(text).toMatch(/iotdr_dns_queries_total\{transport="tcp",type="NS",rcode="NOERROR"\} \d+/);
  });
});

const skipDig = digSkipReason();

describe.skipIf(skipDig !== undefined)('DnsServer queried by dig', () => {
  let dns: RunningDns;
  beforeAll(async () => {
    dns = await startDns({ ...BASE_STATE, active: PRIMARY });
  });
  afterAll(async () => {
    await dns.close();
  });

  it('answers A, TXT, SOA, NS, NXDOMAIN and REFUSED with the AA flag where authoritative', async () => {
    expect((await dig(dns.port, ['+short', 'mqtt.iot.test'])).trim()).toBe(PRIMARY.address);
    expect((await dig(dns.port, ['+short', '_iotdr.mqtt.iot.test', 'TXT'])).trim()).toBe(
      '"region=primary epoch=1"',
    );
    expect((await dig(dns.port, ['+short', 'iot.test', 'SOA'])).trim()).toBe(
      'ns.iot.test. hostmaster.iot.test. 1 3600 600 86400 5',
    );
    expect((await dig(dns.port, ['+short', 'iot.test', 'NS'])).trim()).toBe('ns.iot.test.');
    const a = await dig(dns.port, ['mqtt.iot.test']);
    expect(a).toMatch(/status: NOERROR/);
    expect(a).toMatch(/flags: qr aa rd;/);
    expect(a).toMatch(/EDNS: version: 0, flags:; udp: 1232/);
    const nx = await dig(dns.port, ['nothing.iot.test']);
    expect(nx).toMatch(/status: NXDOMAIN/);
    expect(nx).toMatch(/AUTHORITY: 1/);
    expect(await dig(dns.port, ['example.com'])).toMatch(/status: REFUSED/);
    // dig understands BADVERS and retries with the version we announced.
    const badvers = await dig(dns.port, ['+edns=1', 'mqtt.iot.test']);
    expect(badvers).toMatch(/BADVERS, retrying with EDNS version 0/);
    expect(badvers).toMatch(/status: NOERROR/);
    expect(await dig(dns.port, ['+edns=1', '+noednsnegotiation', 'mqtt.iot.test'])).toMatch(
      /status: BADVERS/,
    );
  });

  it('moves the answer when the state changes', async () => {
    dns.engine.setState({ ...dns.engine.state, active: SECONDARY });
    expect((await dig(dns.port, ['+short', 'mqtt.iot.test'])).trim()).toBe(SECONDARY.address);
    dns.engine.setState({ ...dns.engine.state, active: PRIMARY });
    expect((await dig(dns.port, ['+short', 'mqtt.iot.test'])).trim()).toBe(PRIMARY.address);
  });

  it('sets TC over UDP for a large answer and gives the full answer over TCP', async () => {
    dns.engine.setState({ ...dns.engine.state, nameservers: NAMESERVERS });
    try {
      const udp = await dig(dns.port, ['+ignore', '+noedns', 'iot.test', 'NS']);
      expect(udp).toMatch(/flags: qr aa tc rd;/);
      const tcp = await dig(dns.port, ['+tcp', '+short', 'iot.test', 'NS']);
      expect(tcp.trim().split('\n')).toHaveLength(40);
      // Without +ignore dig itself retries over TCP after TC.
      expect(await dig(dns.port, ['iot.test', 'NS'])).toMatch(/ANSWER: 40, AUTHORITY: 0, ADDITIONAL: 41/);
    } finally {
      dns.engine.setState({ ...dns.engine.state, nameservers: BASE_STATE.nameservers });
    }
  });
});

describe('DnsServer TCP limits', () => {
  it('closes idle connections when the idle timer fires, and refuses connections beyond the limit', async () => {
    const armed: (() => void)[] = [];
    const timers: Timers = {
      setTimeout: (callback) => {
        armed.push(callback);
        return callback;
      },
      clearTimeout: (handle) => {
        const i = armed.indexOf(handle as () => void);
        if (i >= 0) armed.splice(i, 1);
      },
    };
    const dns = await startDns(undefined, { timers, tcpMaxConnections: 1 });
    try {
      const { connect } = await import('node:net');
      const first = connect({ host: '127.0.0.1', port: dns.port });
      await new Promise((resolve) => first.once('connect', resolve));
      const firstClosed = new Promise((resolve) => first.once('close', resolve));
      // The second connection is over the limit of 1: closed without an answer.
      const second = connect({ host: '127.0.0.1', port: dns.port });
      await new Promise((resolve) => second.once('close', resolve));
      await expect.poll(() => armed.length).toBe(1);
      armed[0]?.();
      await firstClosed;
      await expect.poll(() => dns.server.tcpConnections).toBe(0);
      // With the first gone, a new connection is served.
      const [answer] = await tcpExchange(dns.port, [query('mqtt.iot.test', 'A', { id: 5 })], 1);
      expect(decode(answer ?? Buffer.alloc(0)).answers?.[0]).toEqual(
        expect.objectContaining({ data: PRIMARY.address }),
      );
    } finally {
      await dns.close();
    }
  });

  it('honours the client’s EDNS payload size over UDP', async () => {
    const dns = await startDns({ ...BASE_STATE, active: PRIMARY, nameservers: NAMESERVERS.slice(0, 12) });
    try {
      const small = await udpQuery(dns.port, query('iot.test', 'NS', { additionals: [opt(512)] }));
      expect(small.flag_tc).toBe(true);
      const large = await udpQuery(dns.port, query('iot.test', 'NS', { additionals: [opt(1232)] }));
      expect(large.flag_tc).toBe(false);
      expect(large.answers).toHaveLength(12);
    } finally {
      await dns.close();
    }
  });
});

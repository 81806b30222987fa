/** The engine alone: bytes in, bytes out, every rule of the protocol that needs no socket. */
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { DnsEngine, type DnsStateInput } from '../../src/dns/index.js';
import { BASE_STATE, decode, opt, PRIMARY, query } from './support.js';

function engineWith(state: Partial<DnsStateInput> = {}): DnsEngine {
  return new DnsEngine({ state: { ...BASE_STATE, active: PRIMARY, ...state } as DnsStateInput });
}

function ask(engine: DnsEngine, packet: Buffer, transport: 'udp' | 'tcp' = 'udp') {
  const response = engine.answer(packet, transport);
  if (!response) throw new Error('dropped');
  return decode(response);
}

describe('DnsEngine', () => {
  it('answers the fleet names with the active address, authoritatively, echoing the case', () => {
    const engine = engineWith({ names: { mqtt: 'mqtt', api: 'api', extra: ['shadow'] } });
    for (const name of ['MqTt.IOT.test', 'api.iot.test', 'shadow.iot.test']) {
      const r = ask(engine, query(name, 'A', { id: 4242 }));
      expect(r.id).toBe(4242);
      expect(r.rcode).toBe('NOERROR');
      expect(r.flag_aa).toBe(true);
      expect(r.flag_rd).toBe(true);
      expect(r.flag_ra).toBe(false);
      expect(r.questions?.[0]?.name).toBe(name);
      expect(r.answers).toEqual([
        expect.objectContaining({ name, type: 'A', ttl: 5, data: PRIMARY.address }),
      ]);
    }
  });

  it('answers a repeated question from its cache with the new ID, and forgets it on a state change', () => {
    const engine = engineWith();
    expect(ask(engine, query('mqtt.iot.test', 'A', { id: 1 })).id).toBe(1);
    const again = ask(engine, query('mqtt.iot.test', 'A', { id: 2 }));
    expect(again.id).toBe(2);
    expect(again.answers?.[0]).toEqual(expect.objectContaining({ data: PRIMARY.address }));
    engine.setState({ ...engine.state, active: { region: 'secondary', address: '127.0.0.12', epoch: 2 } });
    expect(ask(engine, query('mqtt.iot.test', 'A', { id: 3 })).answers?.[0]).toEqual(
      expect.objectContaining({ data: '127.0.0.12' }),
    );
  });

  it('answers AAAA for an IPv6 region and NODATA with the SOA for the other type (RFC 2308)', () => {
    const engine = engineWith({ active: { region: 'v6', address: '2001:db8::7', epoch: 9 } });
    const aaaa = ask(engine, query('mqtt.iot.test', 'AAAA'));
    expect(aaaa.answers).toEqual([expect.objectContaining({ type: 'AAAA', data: '2001:db8::7' })]);
    const a = ask(engine, query('mqtt.iot.test', 'A'));
    expect(a.rcode).toBe('NOERROR');
    expect(a.answers).toEqual([]);
    expect(a.authorities).toEqual([
      expect.objectContaining({
        type: 'SOA',
        name: 'iot.test',
        ttl: 5,
        data: expect.objectContaining({ serial: 9, minimum: 5 }),
      }),
    ]);
  });

  it('answers NODATA for an empty non-terminal and NXDOMAIN below a leaf', () => {
    const engine = engineWith({ names: { mqtt: 'mqtt', api: 'api', extra: ['eu.devices'] } });
    expect(ask(engine, query('devices.iot.test', 'A')).rcode).toBe('NOERROR');
    expect(ask(engine, query('x.eu.devices.iot.test', 'A')).rcode).toBe('NXDOMAIN');
    expect(ask(engine, query('eu.devices.iot.test', 'A')).answers).toHaveLength(1);
  });

  it('answers SERVFAIL for the fleet names before the first decision, but serves the apex', () => {
    const engine = engineWith({ active: undefined });
    expect(ask(engine, query('mqtt.iot.test', 'A')).rcode).toBe('SERVFAIL');
    expect(ask(engine, query('_iotdr.mqtt.iot.test', 'TXT')).rcode).toBe('SERVFAIL');
    expect(ask(engine, query('iot.test', 'SOA')).answers).toHaveLength(1);
    engine.setState({ ...engine.state, active: PRIMARY });
    expect(ask(engine, query('mqtt.iot.test', 'A')).answers).toHaveLength(1);
  });

  it('refuses other classes, zone transfers, and names outside the zone, without AA', () => {
    const engine = engineWith();
    const ch = ask(
      engine,
      dnsPacket.encode({
        type: 'query',
        id: 1,
        questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }],
      }),
    );
    expect(ch.rcode).toBe('REFUSED');
    expect(ask(engine, query('iot.test', 'AXFR')).rcode).toBe('REFUSED');
    const outside = ask(engine, query('example.com', 'A'));
    expect(outside.rcode).toBe('REFUSED');
    expect(outside.flag_aa).toBe(false);
    expect(ask(engine, query('notiot.test', 'A')).rcode).toBe('REFUSED');
  });

  it('echoes an OPT with our payload size, and answers BADVERS to EDNS versions above 0', () => {
    const engine = engineWith();
    const r = ask(engine, query('mqtt.iot.test', 'A', { additionals: [opt(4096)] }));
    expect(r.additionals).toEqual([
      expect.objectContaining({ type: 'OPT', udpPayloadSize: 1232, ednsVersion: 0 }),
    ]);
    const plain = ask(engine, query('mqtt.iot.test', 'A'));
    expect(plain.additionals).toEqual([]);
    const bad = engine.answer(query('mqtt.iot.test', 'A', { additionals: [opt(4096, 1)] }), 'udp');
    if (!bad) throw new Error('dropped');
    const decoded = decode(bad);
    const badOpt = decoded.additionals?.find((a) => a.type === 'OPT');
    // BADVERS is 16: header RCODE 0, extended RCODE 1 in the OPT (RFC 6891 §6.1.3).
    expect(bad.readUInt16BE(2) & 0xf).toBe(0);
    expect(badOpt).toEqual(expect.objectContaining({ extendedRcode: 1, ednsVersion: 0 }));
    expect(decoded.answers).toEqual([]);
  });

  it('truncates over UDP beyond 512 bytes or the EDNS size, and answers in full over TCP', () => {
    const nameservers = Array.from({ length: 40 }, (_, i) => ({
      name: `ns${i}`,
      address: `127.0.1.${i + 1}`,
    }));
    const engine = engineWith({ nameservers });
    const udp = ask(engine, query('iot.test', 'NS'));
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    expect(udp.questions?.[0]?.name).toBe('iot.test');
    const big = engine.answer(query('iot.test', 'NS', { additionals: [opt(65_000)] }), 'udp');
    // The client may offer 65000; we never send more than our own 1232 over UDP.
    expect(big?.length).toBeLessThanOrEqual(1232);
    expect(decode(big ?? Buffer.alloc(0)).additionals?.[0]?.type).toBe('OPT');
    const tcp = ask(engine, query('iot.test', 'NS'), 'tcp');
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(40);
    expect(tcp.additionals).toHaveLength(40);
    // A small answer is not truncated just because the client offered less than 512.
    expect(ask(engine, query('mqtt.iot.test', 'A', { additionals: [opt(100)] })).flag_tc).toBe(false);
  });

  it('drops what is not a query and answers FORMERR or NOTIMP where the header can be read', () => {
    const engine = engineWith();
    expect(engine.answer(Buffer.from('garbage'), 'udp')).toBeUndefined();
    expect(engine.answer(Buffer.alloc(0), 'udp')).toBeUndefined();
    const response = dnsPacket.encode({
      type: 'response',
      id: 5,
      questions: [{ name: 'mqtt.iot.test', type: 'A' }],
    });
    expect(engine.answer(response, 'udp')).toBeUndefined();

    const good = query('mqtt.iot.test', 'A', { id: 77 });
    const cases: Buffer[] = [
      good.subarray(0, good.length - 3), // truncated question
      Buffer.concat([good, Buffer.from([1, 2, 3])]), // trailing bytes
      dnsPacket.encode({
        type: 'query',
        id: 77,
        questions: [
          { name: 'mqtt.iot.test', type: 'A' },
          { name: 'api.iot.test', type: 'A' },
        ],
      }),
      dnsPacket.encode({ type: 'query', id: 77, questions: [] }),
      query('mqtt.iot.test', 'A', { id: 77, additionals: [opt(1232), opt(1232)] }),
      query('mqtt.iot.test', 'OPT', { id: 77 }),
    ];
    // A label holding a dot (or a non-ASCII byte) could never be echoed faithfully.
    const dotted = Buffer.from(good);
    dotted[14] = 0x2e; // m.tt inside the first label
    cases.push(dotted);
    // Header counts promising more than the packet holds.
    const lying = Buffer.from(good);
    lying.writeUInt16BE(3, 10);
    cases.push(lying);
    for (const packet of cases) {
      const r = ask(engine, packet);
      expect(r.id).toBe(77);
      expect(r.rcode).toBe('FORMERR');
      expect(r.flag_qr).toBe(true);
    }

    const notify = Buffer.from(good);
    notify.writeUInt16BE((4 << 11) | 0x0100, 2); // opcode NOTIFY
    const notimp = ask(engine, notify);
    expect(notimp.rcode).toBe('NOTIMP');
    expect((notimp as unknown as { opcode: string }).opcode).toBe('NOTIFY');
  });

  it('rejects an invalid state with the fields named, and keeps serving the old one', () => {
    const engine = engineWith();
    expect(() =>
      engine.setState({
        ...BASE_STATE,
        zone: 'Not A Zone!',
        active: { region: 'x', address: 'nope', epoch: -1 },
      }),
    ).toThrow(
      expect.objectContaining({
        code: 'IOTDR_DNS_INVALID_STATE',
        issues: expect.arrayContaining([
          expect.objectContaining({ path: 'zone' }),
          expect.objectContaining({ path: 'active.address' }),
          expect.objectContaining({ path: 'active.epoch' }),
        ]),
      }),
    );
    expect(() => engine.setState({ ...BASE_STATE, names: { mqtt: 'mqtt', api: 'mqtt' } })).toThrow(
      /invalid DNS/,
    );
    expect(() => engine.setState({ ...BASE_STATE, nameservers: [] })).toThrow(/invalid DNS/);
    expect(ask(engine, query('mqtt.iot.test', 'A')).answers?.[0]).toEqual(
      expect.objectContaining({ data: PRIMARY.address }),
    );
  });
});

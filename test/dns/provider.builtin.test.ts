/** The built-in provider passes the shared suite, with two servers following the same decisions. */
import { describe, expect, it } from 'vitest';
import { BuiltinDnsProvider, type DnsEngine } from '../../src/dns/index.js';
import { describeProvider } from './provider-suite.js';
import { resolverFor, startDns } from './support.js';

const state = (zone: string) => ({
  zone,
  ttl: 5,
  names: { extra: ['shadow'] },
  nameservers: [{ name: 'ns', address: '127.0.0.1' }],
});

describeProvider('builtin', () => async (zone) => {
  const dns = await startDns(state(zone));
  return { provider: new BuiltinDnsProvider({ engines: [dns.engine] }), dnsPort: dns.port, close: dns.close };
});

describe('BuiltinDnsProvider', () => {
  it('moves every server it drives', async () => {
    const one = await startDns(state('iot.test'));
    const two = await startDns(state('iot.test'));
    try {
      const provider = new BuiltinDnsProvider({ engines: [one.engine, two.engine] });
      await provider.apply({ region: 'secondary', address: '127.0.0.12', epoch: 4 });
      for (const port of [one.port, two.port]) {
        expect(await resolverFor(port).resolve4('mqtt.iot.test')).toEqual(['127.0.0.12']);
      }
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('needs at least one engine', () => {
    expect(() => new BuiltinDnsProvider({ engines: [] as DnsEngine[] })).toThrow(/at least one engine/);
  });
});

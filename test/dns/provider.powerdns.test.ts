/** The PowerDNS provider against a real pdns_server (gsqlite3), checked with real DNS queries to it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PowerDnsProvider } from '../../src/dns/index.js';
import { powerDnsSkipReason, type RunningPowerDns, startPowerDns } from '../harness/pdns.js';
import { describeProvider } from './provider-suite.js';
import { resolverFor } from './support.js';

const skip = powerDnsSkipReason();
if (skip) console.warn(`skipping PowerDNS provider tests: ${skip}`);

describe.skipIf(skip !== undefined)('PowerDnsProvider', () => {
  let pdns: RunningPowerDns;
  beforeAll(async () => {
    const started = await startPowerDns();
    if ('skipped' in started) throw new Error(started.skipped);
    pdns = started;
  });
  afterAll(async () => {
    await pdns?.stop();
  });

  const provider = (
    zone: string,
    overrides: Partial<ConstructorParameters<typeof PowerDnsProvider>[0]> = {},
  ) =>
    new PowerDnsProvider({
      url: pdns.url,
      apiKey: pdns.apiKey,
      zone,
      ttl: 5,
      names: { extra: ['shadow'] },
      ...overrides,
    });

  describeProvider('powerdns', () => async (zone) => ({
    provider: provider(zone),
    dnsPort: pdns.dnsPort,
    close: async () => {},
  }));

  it('creates the zone with our name server and a short negative TTL', async () => {
    const p = provider('created.iot.test');
    await p.apply({ region: 'primary', address: '127.0.0.11', epoch: 1 });
    const soa = await resolverFor(pdns.dnsPort).resolveSoa('created.iot.test');
    expect(soa).toEqual(expect.objectContaining({ nsname: 'ns.created.iot.test', minttl: 5 }));
    expect(await resolverFor(pdns.dnsPort).resolveNs('created.iot.test')).toEqual(['ns.created.iot.test']);
  });

  it('fails with a stable code on a wrong API key or an unreachable server, changing nothing', async () => {
    const good = provider('keys.iot.test');
    await good.apply({ region: 'primary', address: '127.0.0.11', epoch: 1 });
    const wrongKey = provider('keys.iot.test', { apiKey: 'wrong' });
    await expect(
      wrongKey.apply({ region: 'secondary', address: '127.0.0.12', epoch: 2 }),
    ).rejects.toMatchObject({
      code: 'IOTDR_DNS_PROVIDER_REJECTED',
      details: expect.objectContaining({ status: 401 }),
    });
    const down = provider('keys.iot.test', { url: 'http://127.0.0.1:1' });
    await expect(down.current()).rejects.toMatchObject({ code: 'IOTDR_DNS_PROVIDER_UNREACHABLE' });
    expect(await good.current()).toEqual({ region: 'primary', address: '127.0.0.11', epoch: 1 });
  });

  it('refuses invalid options with the fields named', () => {
    expect(() => provider('iot.test', { url: 'ftp://x', apiKey: '' })).toThrow(
      expect.objectContaining({
        code: 'IOTDR_DNS_INVALID_STATE',
        issues: expect.arrayContaining([
          expect.objectContaining({ path: 'url' }),
          expect.objectContaining({ path: 'apiKey' }),
        ]),
      }),
    );
  });
});

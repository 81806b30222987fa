/**
 * The shared suite every DnsProvider passes: what apply() changes is checked with real DNS queries
 * to the server that serves it (node's resolver, and dig when installed).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DnsProvider } from '../../src/dns/index.js';
import { dig, digSkipReason, resolverFor } from './support.js';

export interface ProviderFixture {
  provider: DnsProvider;
  /** UDP/TCP port on 127.0.0.1 of the DNS server that serves what the provider applies. */
  dnsPort: number;
  close(): Promise<void>;
}

/** Creates a provider for a zone of its own (a fresh zone per test), TTL 5, extra name `shadow`. */
export type ProviderFactory = (zone: string) => Promise<ProviderFixture>;

const A = { region: 'primary', address: '127.0.0.11', epoch: 1 };
const B = { region: 'secondary', address: '127.0.0.12', epoch: 2 };
const V6 = { region: 'ipv6', address: '2001:db8::12', epoch: 3 };

let counter = 0;

export function describeProvider(name: string, factory: () => ProviderFactory): void {
  describe(`DnsProvider contract: ${name}`, () => {
    const open: ProviderFixture[] = [];
    const fresh = async (): Promise<{ fixture: ProviderFixture; zone: string }> => {
      counter += 1;
      const zone = `z${process.pid}-${counter}.iot.test`;
      const fixture = await factory()(zone);
      open.push(fixture);
      return { fixture, zone };
    };
    afterEach(async () => {
      for (const f of open.splice(0)) {
        await f.provider.close();
        await f.close();
      }
    });

    it('serves nothing before the first decision, then the applied region on every fleet name', async () => {
      const { fixture, zone } = await fresh();
      expect(await fixture.provider.current()).toBeUndefined();
      await fixture.provider.apply(A);
      expect(await fixture.provider.current()).toEqual(A);
      const resolver = resolverFor(fixture.dnsPort);
      for (const label of ['mqtt', 'api', 'shadow']) {
        expect(await resolver.resolve4(`${label}.${zone}`, { ttl: true })).toEqual([
          { address: A.address, ttl: 5 },
        ]);
      }
      expect(await resolver.resolveTxt(`_iotdr.mqtt.${zone}`)).toEqual([['region=primary epoch=1']]);
    });

    it('moves the answers to the next region, and to AAAA for an IPv6 address', async () => {
      const { fixture, zone } = await fresh();
      const resolver = resolverFor(fixture.dnsPort);
      await fixture.provider.apply(A);
      await fixture.provider.apply(B);
      expect(await fixture.provider.current()).toEqual(B);
      expect(await resolver.resolve4(`mqtt.${zone}`)).toEqual([B.address]);
      expect(await resolver.resolveTxt(`_iotdr.mqtt.${zone}`)).toEqual([['region=secondary epoch=2']]);
      if (digSkipReason() === undefined) {
        expect((await dig(fixture.dnsPort, ['+short', `api.${zone}`])).trim()).toBe(B.address);
      }
      await fixture.provider.apply(V6);
      expect(await fixture.provider.current()).toEqual(V6);
      expect(await resolver.resolve6(`mqtt.${zone}`)).toEqual([V6.address]);
      await expect(resolver.resolve4(`mqtt.${zone}`)).rejects.toMatchObject({ code: 'ENODATA' });
    });

    it('accepts the served decision again, refuses a stale one and changes nothing', async () => {
      const { fixture, zone } = await fresh();
      await fixture.provider.apply(B);
      await fixture.provider.apply(B);
      await expect(fixture.provider.apply(A)).rejects.toMatchObject({
        code: 'IOTDR_DNS_STALE_EPOCH',
        status: 409,
      });
      await expect(fixture.provider.apply({ ...A, epoch: B.epoch })).rejects.toMatchObject({
        code: 'IOTDR_DNS_STALE_EPOCH',
      });
      expect(await fixture.provider.current()).toEqual(B);
      expect(await resolverFor(fixture.dnsPort).resolve4(`mqtt.${zone}`)).toEqual([B.address]);
    });

    it('rejects an invalid decision with the fields named and changes nothing', async () => {
      const { fixture, zone } = await fresh();
      await fixture.provider.apply(A);
      await expect(
        fixture.provider.apply({ region: 'Bad Name', address: 'not-an-ip', epoch: 5 }),
      ).rejects.toMatchObject({
        code: 'IOTDR_DNS_INVALID_STATE',
        issues: expect.arrayContaining([
          expect.objectContaining({ path: 'region' }),
          expect.objectContaining({ path: 'address' }),
        ]),
      });
      await expect(fixture.provider.apply({ ...B, epoch: -1 })).rejects.toMatchObject({
        code: 'IOTDR_DNS_INVALID_STATE',
      });
      expect(await fixture.provider.current()).toEqual(A);
      expect(await resolverFor(fixture.dnsPort).resolve4(`mqtt.${zone}`)).toEqual([A.address]);
    });
  });
}

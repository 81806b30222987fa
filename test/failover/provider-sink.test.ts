/** A DNS provider that is away during a switch takes the decision when it is back, and only the latest. */
import { describe, expect, it } from 'vitest';
import {
  type ActiveRegion,
  BuiltinDnsProvider,
  DnsEngine,
  type DnsProvider,
  ProviderError,
} from '../../src/dns/index.js';
import { ProviderSink } from '../../src/failover/index.js';
import { eventually } from '../harness/cluster.js';

/** The built-in provider behind a switch that makes it fail like an unreachable API while `down`. */
class Flaky implements DnsProvider {
  readonly kind = 'flaky';
  down = true;
  calls = 0;
  constructor(readonly inner: BuiltinDnsProvider) {}
  async apply(active: ActiveRegion): Promise<void> {
    this.calls += 1;
    if (this.down) throw new ProviderError('IOTDR_DNS_PROVIDER_UNREACHABLE', 'the DNS API is unreachable');
    await this.inner.apply(active);
  }
  current() {
    return this.inner.current();
  }
  async close() {}
}

describe('ProviderSink', () => {
  it('retries a failed provider with backoff until it takes the latest decision', async () => {
    const engine = new DnsEngine({
      state: { zone: 'iot.test', nameservers: [{ name: 'ns', address: '127.0.0.10' }] },
    });
    const flaky = new Flaky(new BuiltinDnsProvider({ engines: [engine] }));
    const addresses: Record<string, string> = { 'us-east': '127.0.0.11', 'us-west': '127.0.0.12' };
    const sink = new ProviderSink({
      provider: flaky,
      addressOf: (r) => addresses[r] ?? '',
      retry: { baseMs: 10, capMs: 40 },
    });
    try {
      expect(sink.name).toBe('flaky');
      await expect(sink.apply({ activeRegion: 'us-west', epoch: 1, at: 1, eventId: 'a' })).rejects.toThrow(
        /unreachable/,
      );
      expect(sink.pending).toBe(true);
      await eventually(async () => flaky.calls >= 3, 'a few retries');
      // A newer decision while the provider is still away replaces the one being retried.
      await expect(sink.apply({ activeRegion: 'us-east', epoch: 2, at: 2, eventId: 'b' })).rejects.toThrow();
      flaky.down = false;
      await eventually(async () => !sink.pending, 'the retry succeeding');
      expect(engine.state.active).toEqual({ region: 'us-east', address: '127.0.0.11', epoch: 2 });
    } finally {
      await sink.close();
    }
  });

  it('stops retrying when closed', async () => {
    const engine = new DnsEngine({
      state: { zone: 'iot.test', nameservers: [{ name: 'ns', address: '127.0.0.10' }] },
    });
    const flaky = new Flaky(new BuiltinDnsProvider({ engines: [engine] }));
    const sink = new ProviderSink({
      provider: flaky,
      addressOf: () => '127.0.0.11',
      retry: { baseMs: 5, capMs: 5 },
    });
    await expect(sink.apply({ activeRegion: 'us-east', epoch: 0, at: 1, eventId: null })).rejects.toThrow();
    await sink.close();
    const calls = flaky.calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(flaky.calls).toBe(calls);
    expect(sink.pending).toBe(false);
  });
});

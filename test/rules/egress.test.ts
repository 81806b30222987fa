import { describe, expect, it } from 'vitest';
import { ConfigError, type FieldIssue } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { addressCheck, parseNetwork } from '../../src/rules/index.js';

describe('where an HTTP action may connect', () => {
  it('refuses every address that is not globally reachable, by default', () => {
    const check = addressCheck([]);
    const refused: Array<[string, RegExp]> = [
      ['127.0.0.1', /loopback/],
      ['127.255.0.9', /loopback/],
      ['::1', /loopback/],
      ['169.254.169.254', /link-local/],
      ['fe80::1', /link-local/],
      ['fe80::1%eth0', /link-local/],
      ['0.0.0.0', /unspecified/],
      ['::', /unspecified/],
      ['10.1.2.3', /private/],
      ['172.31.255.255', /private/],
      ['192.168.0.10', /private/],
      ['100.64.0.1', /shared address space/],
      ['fd12:3456::1', /unique local/],
      ['224.0.0.251', /multicast/],
      ['ff02::1', /multicast/],
      ['255.255.255.255', /reserved/],
      // The IPv4-mapped and NAT64 forms of those.
      ['::ffff:127.0.0.1', /loopback \(IPv4-mapped\)/],
      ['::ffff:a9fe:a9fe', /link-local.*\(IPv4-mapped\)/],
      ['::ffff:10.0.0.1', /private.*\(IPv4-mapped\)/],
      ['64:ff9b::7f00:1', /loopback \(NAT64\)/],
      ['::7f00:1', /IPv4-compatible/],
    ];
    for (const [address, reason] of refused) expect(check(address), address).toMatch(reason);
    for (const address of ['93.184.215.14', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8', '172.32.0.1'])
      expect(check(address), address).toBeUndefined();
  });

  it('lets through what the operator lists, in either form of an IPv4 address', () => {
    const check = addressCheck(['10.20.0.0/16', '127.0.0.1', 'fd00:1::/64']);
    for (const address of ['10.20.3.4', '::ffff:10.20.3.4', '127.0.0.1', 'fd00:1::5'])
      expect(check(address), address).toBeUndefined();
    for (const address of ['10.21.0.1', '127.0.0.2', '::1', 'fd00:2::5', '169.254.169.254'])
      expect(check(address), address).toBeDefined();
  });

  it('reads networks strictly', () => {
    expect(parseNetwork('10.0.0.0/8')).toMatchObject({ family: 4, prefix: 8 });
    expect(parseNetwork('::1')).toMatchObject({ family: 6, prefix: 128 });
    expect(parseNetwork('10.0.0.1/8')).toMatch(/bits set past the \/8 prefix/);
    expect(parseNetwork('10.0.0.0/33')).toMatch(/prefix length from 0 to 32/);
    expect(parseNetwork('localhost')).toMatch(/CIDR/);
  });

  it('is configured by ruleHttp.allowedNetworks, none by default, each entry checked', () => {
    expect(parseConfig({}).ruleHttp).toEqual({ allowedNetworks: [] });
    expect(parseConfig({ ruleHttp: { allowedNetworks: ['10.0.0.0/8'] } }).ruleHttp.allowedNetworks).toEqual([
      '10.0.0.0/8',
    ]);
    let issues: FieldIssue[] = [];
    try {
      parseConfig({ ruleHttp: { allowedNetworks: ['10.0.0.0/8', '10.0.0.1/8'] } });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      issues = (error as ConfigError).issues;
    }
    expect(issues).toEqual([
      { path: 'ruleHttp.allowedNetworks.1', message: expect.stringContaining('bits set past the /8 prefix') },
    ]);
  });
});

/**
 * The flags an etcd member is launched with: URLs for plain and TLS links and IPv6 addresses, the
 * initial cluster, mutual TLS on both links, and every flag known to the installed etcd.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  ETCD_COMPACTION_RETENTION_REVISIONS,
  type EtcdMemberSpec,
  etcdClientUrl,
  etcdMemberArgs,
  etcdPeerUrl,
  findEtcd,
} from '../../src/control/index.js';
import { etcdSkipReason } from '../harness/etcd.js';

const CLUSTER = [
  { name: 'a', address: '10.0.0.1', peerPort: 2380 },
  { name: 'b', address: '10.0.0.2', peerPort: 2380 },
  { name: 'c', address: '10.0.0.3', peerPort: 2381 },
];

const PLAIN: EtcdMemberSpec = {
  name: 'b',
  address: '10.0.0.2',
  clientPort: 2379,
  peerPort: 2380,
  dataDir: '/var/lib/iotdr/etcd/b',
  cluster: CLUSTER,
  clusterToken: 'iotdr-prod',
};

const TLS: EtcdMemberSpec = {
  ...PLAIN,
  tls: { caFile: '/s/pki/ca.pem', certFile: '/s/pki/sites/etcd-b.pem', keyFile: '/s/pki/sites/etcd-b.key' },
};

/** `--flag=value` pairs as a map; a boolean flag maps to true. */
function flags(args: string[]): Map<string, string | true> {
  const map = new Map<string, string | true>();
  for (const arg of args) {
    expect(arg.startsWith('--')).toBe(true);
    const eq = arg.indexOf('=');
    if (eq === -1) map.set(arg.slice(2), true);
    else map.set(arg.slice(2, eq), arg.slice(eq + 1));
  }
  expect(map.size, 'no flag is given twice').toBe(args.length);
  return map;
}

describe('etcd URLs', () => {
  it('uses http or https and puts an IPv6 address in brackets', () => {
    expect(etcdClientUrl('127.0.0.1', 2379, false)).toBe('http://127.0.0.1:2379');
    expect(etcdClientUrl('127.0.0.1', 2379, true)).toBe('https://127.0.0.1:2379');
    expect(etcdPeerUrl('::1', 2380, true)).toBe('https://[::1]:2380');
    expect(etcdPeerUrl('etcd-a.example', 2380, false)).toBe('http://etcd-a.example:2380');
  });
});

describe('etcdMemberArgs', () => {
  it('launches a plain member of a new cluster on its address', () => {
    const f = flags(etcdMemberArgs(PLAIN));
    expect(Object.fromEntries(f)).toEqual({
      name: 'b',
      'data-dir': '/var/lib/iotdr/etcd/b',
      'listen-client-urls': 'http://10.0.0.2:2379',
      'advertise-client-urls': 'http://10.0.0.2:2379',
      'listen-peer-urls': 'http://10.0.0.2:2380',
      'initial-advertise-peer-urls': 'http://10.0.0.2:2380',
      'initial-cluster': 'a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2381',
      'initial-cluster-state': 'new',
      'initial-cluster-token': 'iotdr-prod',
      logger: 'zap',
      'log-outputs': 'stderr',
      'auto-compaction-mode': 'revision',
      'auto-compaction-retention': String(ETCD_COMPACTION_RETENTION_REVISIONS),
    });
  });

  it('asks for certificates from the CA on both links with TLS', () => {
    const f = flags(etcdMemberArgs(TLS));
    expect(f.get('listen-client-urls')).toBe('https://10.0.0.2:2379');
    expect(f.get('advertise-client-urls')).toBe('https://10.0.0.2:2379');
    expect(f.get('listen-peer-urls')).toBe('https://10.0.0.2:2380');
    expect(f.get('initial-cluster')).toBe(
      'a=https://10.0.0.1:2380,b=https://10.0.0.2:2380,c=https://10.0.0.3:2381',
    );
    expect(f.get('client-cert-auth')).toBe(true);
    expect(f.get('peer-client-cert-auth')).toBe(true);
    expect(f.get('trusted-ca-file')).toBe('/s/pki/ca.pem');
    expect(f.get('peer-trusted-ca-file')).toBe('/s/pki/ca.pem');
    expect(f.get('cert-file')).toBe('/s/pki/sites/etcd-b.pem');
    expect(f.get('peer-cert-file')).toBe('/s/pki/sites/etcd-b.pem');
    expect(f.get('key-file')).toBe('/s/pki/sites/etcd-b.key');
    expect(f.get('peer-key-file')).toBe('/s/pki/sites/etcd-b.key');
    // Certificates etcd would make up itself would trust anyone.
    expect(f.has('auto-tls')).toBe(false);
    expect(f.has('peer-auto-tls')).toBe(false);
  });

  it('brackets IPv6 addresses in every URL', () => {
    const f = flags(
      etcdMemberArgs({
        ...TLS,
        name: 'a',
        address: '::1',
        cluster: [
          { name: 'a', address: '::1', peerPort: 2380 },
          { name: 'b', address: 'fd00::2', peerPort: 2380 },
        ],
      }),
    );
    expect(f.get('listen-client-urls')).toBe('https://[::1]:2379');
    expect(f.get('initial-advertise-peer-urls')).toBe('https://[::1]:2380');
    expect(f.get('initial-cluster')).toBe('a=https://[::1]:2380,b=https://[fd00::2]:2380');
  });

  it('sets raft timings only when given', () => {
    const none = flags(etcdMemberArgs(PLAIN));
    expect(none.has('heartbeat-interval')).toBe(false);
    expect(none.has('election-timeout')).toBe(false);
    const both = flags(etcdMemberArgs({ ...PLAIN, heartbeatMs: 50, electionMs: 500 }));
    expect(both.get('heartbeat-interval')).toBe('50');
    expect(both.get('election-timeout')).toBe('500');
  });

  const skip = etcdSkipReason();
  it.skipIf(skip !== undefined)('gives only flags the installed etcd knows', () => {
    const help = execFileSync(findEtcd() as string, ['--help'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const known = new Set([...help.matchAll(/^\s+(--[a-z0-9-]+)/gm)].map((m) => m[1]));
    expect(known.size).toBeGreaterThan(50);
    const given = [
      ...etcdMemberArgs({ ...TLS, heartbeatMs: 50, electionMs: 500 }).map((arg) => arg.split('=')[0]),
    ];
    expect(given.filter((flag) => !known.has(flag))).toEqual([]);
  });
});

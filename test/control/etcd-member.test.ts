/**
 * etcd members launched with the product's flags, as a real cluster: a 3-member cluster over mutual
 * TLS takes writes from a client with a certificate from the platform's CA and refuses any other,
 * keeps its quorum with one member killed, takes that member back on its data directory, and stops
 * taking writes with two down; a 1-member cluster over plain HTTP works too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { etcdSkipReason, type RunningEtcd, startEtcd } from '../harness/etcd.js';

const skip = etcdSkipReason();
/** Each call of the tests' clients gives up after this long, ms: a refused call must not hang. */
const CALL_MS = 2_000;

const clients: Etcd3[] = [];

/** A client whose every call (not streams) has its own deadline; closed after each test. */
function etcdClient(hosts: string[], credentials?: IOptions['credentials']): Etcd3 {
  const client = new Etcd3({
    hosts,
    ...(credentials === undefined ? {} : { credentials }),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_MS }),
  });
  clients.push(client);
  return client;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** Waits until a put of `value` succeeds; calls may fail meanwhile (an election, a breaker open). */
async function putEventually(client: Etcd3, key: string, value: string): Promise<void> {
  await waitUntil(
    async () => {
      await client.put(key).value(value);
      return true;
    },
    { timeoutMs: 20_000, what: `a put of ${key}` },
  );
}

describe.skipIf(skip !== undefined)(
  'a three-member etcd cluster over mutual TLS',
  () => {
    let etcd: RunningEtcd;

    beforeAll(async () => {
      etcd = await startEtcd({ members: 3 });
    });

    afterAll(async () => {
      await etcd?.stop();
    });

    it('stores and reads values for a client with a certificate from the CA', async () => {
      expect(etcd.endpoints).toHaveLength(3);
      expect(etcd.endpoints.every((url) => url.startsWith('https://'))).toBe(true);
      const client = etcdClient(etcd.endpoints, etcd.credentials);
      await client.put('iotdr/test/greeting').value('hello');
      expect(await client.get('iotdr/test/greeting').string()).toBe('hello');
    });

    it('refuses a client without a certificate, or with one from another CA', async () => {
      const credentials = etcd.credentials as NonNullable<RunningEtcd['credentials']>;
      const anonymous = etcdClient(etcd.endpoints, { rootCertificate: credentials.rootCertificate });
      await expect(anonymous.put('iotdr/test/anonymous').value('x')).rejects.toThrow();

      const otherDir = mkdtempSync(join(tmpdir(), 'iotdr-etcd-other-'));
      try {
        const other = await loadOrCreateCa(join(otherDir, 'pki'));
        const stranger = await other.issueSiteCertificate({
          site: { kind: 'control', name: 'test' },
          ipAddresses: [],
          dnsNames: [],
        });
        const impostor = etcdClient(etcd.endpoints, {
          rootCertificate: credentials.rootCertificate,
          certChain: Buffer.from(stranger.certificatePem),
          privateKey: Buffer.from(stranger.privateKeyPem),
        });
        await expect(impostor.put('iotdr/test/impostor').value('x')).rejects.toThrow();
      } finally {
        rmSync(otherDir, { recursive: true, force: true });
      }

      // Neither write reached the cluster.
      const client = etcdClient(etcd.endpoints, etcd.credentials);
      expect(await client.get('iotdr/test/anonymous').string()).toBeNull();
      expect(await client.get('iotdr/test/impostor').string()).toBeNull();
    });

    it('takes writes with one member killed, and that member catches up when it is back', async () => {
      const [gone] = etcd.members;
      if (gone === undefined) throw new Error('no member');
      const client = etcdClient(etcd.endpoints, etcd.credentials);
      await client.put('iotdr/test/counter').value('0');

      await gone.kill();
      expect(gone.running).toBe(false);
      // The first put may fall into an election when the killed member led; then every put succeeds.
      await putEventually(client, 'iotdr/test/counter', '1');
      for (let i = 2; i <= 5; i++) await client.put('iotdr/test/counter').value(String(i));

      const pid = gone.pid;
      await gone.start();
      expect(gone.pid).not.toBe(pid);
      const alone = etcdClient([gone.clientUrl], etcd.credentials);
      expect(await alone.get('iotdr/test/counter').string()).toBe('5');
      // Served from the member's own copy, not through the leader: it has caught up.
      expect(await alone.get('iotdr/test/counter').serializable(true).string()).toBe('5');
    });

    it('stops taking writes with two of three members down, and takes them again when one is back', async () => {
      const [, second, third] = etcd.members;
      if (second === undefined || third === undefined) throw new Error('no members');
      await Promise.all([second.kill(), third.kill()]);
      const client = etcdClient(etcd.endpoints, etcd.credentials);
      await expect(
        client
          .put('iotdr/test/no-quorum')
          .value('x')
          .options({ deadline: Date.now() + CALL_MS }),
      ).rejects.toThrow();

      await second.start();
      const after = etcdClient(etcd.endpoints, etcd.credentials);
      await putEventually(after, 'iotdr/test/quorum', 'back');
      expect(await after.get('iotdr/test/no-quorum').string()).toBeNull();
      await third.start();
    });
  },
  120_000,
);

describe.skipIf(skip !== undefined)('a one-member etcd over plain HTTP', () => {
  let etcd: RunningEtcd;

  beforeAll(async () => {
    etcd = await startEtcd({ members: 1, tls: false });
  });

  afterAll(async () => {
    await etcd?.stop();
  });

  it('stores and reads values without certificates', async () => {
    expect(etcd.endpoints).toHaveLength(1);
    expect(etcd.endpoints[0]?.startsWith('http://')).toBe(true);
    expect(etcd.credentials).toBeUndefined();
    const client = etcdClient(etcd.endpoints);
    await client.put('iotdr/test/plain').value('yes');
    expect(await client.get('iotdr/test/plain').string()).toBe('yes');
  });
});

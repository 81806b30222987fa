/**
 * The control nodes' election and store on a real three-member etcd cluster over mutual TLS: one
 * leader at a time, a new one when it stops or crashes, writes fenced by the leader's lease, the
 * decision log in etcd, and controllers that decide only while they lead.
 */
import type { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { EtcdControlStore, EtcdElection, etcdClient } from '../../src/control/index.js';
import {
  type Decision,
  FailoverController,
  type NewEvent,
  type PersistedState,
  type SwitchActions,
  type SwitchEvent,
} from '../../src/failover/index.js';
import { observation, REGIONS } from '../failover/support.js';
import { etcdSkipReason, type RunningEtcd, startEtcd } from '../harness/etcd.js';

const skip = etcdSkipReason();
const TTL_MS = 2000;

describe.skipIf(skip !== undefined)('control nodes on etcd', () => {
  let etcd: RunningEtcd;
  let prefix: string;
  let n = 0;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    etcd = await startEtcd({ members: 3 });
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function client(): Etcd3 {
    const c = etcdClient({
      endpoints: etcd.endpoints,
      tls: {
        caPem: etcd.caPem as string,
        certPem: etcd.client?.certPem as string,
        keyPem: etcd.client?.keyPem as string,
      },
    });
    cleanups.push(() => c.close());
    return c;
  }

  /** A node: its own client, election and store under this test's prefix. */
  function node(name: string) {
    const c = client();
    const election = new EtcdElection({
      client: c,
      prefix,
      node: name,
      url: `https://${name}.test:8080`,
      leaseTtlMs: TTL_MS,
    });
    const store = new EtcdControlStore({ client: c, prefix, election });
    cleanups.push(() => election.stop());
    return { client: c, election, store };
  }

  function fresh(): void {
    n++;
    prefix = `/iotdr-test/${process.pid}/${n}/`;
  }

  const leaders = (nodes: { election: EtcdElection }[]) => nodes.filter((x) => x.election.isLeader());

  const state = (epoch: number, activeRegion = 'us-east'): PersistedState => ({
    activeRegion,
    epoch,
    decidedAt: 1,
    lastSwitchId: null,
    override: null,
    noHealthyRegion: false,
    health: {},
  });

  it('elects one leader; when it stops, or crashes, another takes over', async () => {
    fresh();
    const nodes = ['a', 'b', 'c'].map(node);
    for (const x of nodes) x.election.start();
    await waitUntil(() => leaders(nodes).length === 1, { timeoutMs: 10_000, what: 'a leader' });
    const first = leaders(nodes)[0] as (typeof nodes)[number];
    for (const x of nodes)
      await waitUntil(() => x.election.leader()?.node === first.election.node, {
        timeoutMs: 5000,
        what: 'everyone sees the leader',
      });
    expect(first.election.leader()).toMatchObject({
      url: `https://${first.election.node}.test:8080`,
      leaseTtlMs: TTL_MS,
    });

    // A clean stop revokes the lease: the next leader comes within a poll.
    await first.election.stop();
    const rest = nodes.filter((x) => x !== first);
    await waitUntil(() => leaders(rest).length === 1, { timeoutMs: 5000, what: 'a second leader' });
    expect(leaders(nodes)).toHaveLength(1);

    // A crash (its client gone, the lease left to run out): a third leader within the TTL and a poll.
    const second = leaders(rest)[0] as (typeof nodes)[number];
    second.client.close();
    const crashedAt = Date.now();
    const last = rest.filter((x) => x !== second);
    await waitUntil(() => leaders(last).length === 1, { timeoutMs: TTL_MS * 3, what: 'a third leader' });
    expect(Date.now() - crashedAt).toBeLessThan(TTL_MS * 3);
  }, 60_000);

  it('commits only while the lease holds the leader key: a deposed leader’s write changes nothing', async () => {
    fresh();
    const a = node('a');
    a.election.start();
    await waitUntil(() => a.election.isLeader(), { timeoutMs: 10_000, what: 'a leads' });
    await a.store.load();
    const switched: NewEvent = {
      type: 'override-set',
      id: 'e1',
      at: 1,
      override: { region: 'us-west', reason: 'test', who: 'ops', at: 1 },
    };
    const [committed] = await a.store.commit(state(1, 'us-west'), [switched]);
    expect(committed).toMatchObject({ id: 'e1', seq: 1 });

    // etcd lets a's lease go (as when a was cut off for longer than the TTL).
    const admin = client();
    const revoked = a.election.leaseId() as string;
    await admin.leaseClient.leaseRevoke({ ID: revoked });
    await expect(a.store.commit(state(2, 'us-east'), [{ ...switched, id: 'e2' }])).rejects.toMatchObject({
      code: 'IOTDR_FAILOVER_NOT_LEADER',
    });
    const b = node('b');
    b.election.start();
    // a believes it leads until its next keepalive hears the lease is gone; etcd refused it meanwhile.
    await waitUntil(
      () => b.election.isLeader() || (a.election.isLeader() && a.election.leaseId() !== revoked),
      {
        timeoutMs: 10_000,
        what: 'a leader with a live lease',
      },
    );
    // a may still believe it leads with the revoked lease (etcd refuses it): take the one that holds the key.
    const now = b.election.isLeader() ? b : a;
    const seen = await now.store.load();
    expect(seen.state).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    expect(await now.store.getEvent('e2')).toBeUndefined();
    await now.store.commit(state(2, 'us-east'), [{ ...switched, id: 'e3' }]);
    expect((await now.store.events({ limit: 10 })).map((e) => [e.id, e.seq])).toEqual([
      ['e1', 1],
      ['e3', 2],
    ]);
  }, 60_000);

  it('refuses a commit based on a state someone else wrote since it was read', async () => {
    fresh();
    const a = node('a');
    a.election.start();
    await waitUntil(() => a.election.isLeader(), { timeoutMs: 10_000, what: 'a leads' });
    await a.store.load();
    await a.store.commit(state(0), []);
    // Another writer (an operator's etcdctl) changes the state behind a's back.
    await client()
      .put(`${prefix}state`)
      .value(JSON.stringify({ version: 1, state: state(7), lastSeq: 0 }));
    await expect(a.store.commit(state(1), [])).rejects.toMatchObject({ code: 'IOTDR_FAILOVER_NOT_LEADER' });
    expect((await a.store.load()).state).toMatchObject({ epoch: 7 });
    await a.store.commit(state(8), []);
    expect((await a.store.load()).state).toMatchObject({ epoch: 8 });
  }, 60_000);

  it('keeps the decision log in order, pages it, finds a switch by id, and keeps only the latest events', async () => {
    fresh();
    const c = client();
    const election = new EtcdElection({
      client: c,
      prefix,
      node: 'a',
      url: 'https://a.test',
      leaseTtlMs: TTL_MS,
    });
    cleanups.push(() => election.stop());
    const store = new EtcdControlStore({ client: c, prefix, election, retainEvents: 5 });
    election.start();
    await waitUntil(() => election.isLeader(), { timeoutMs: 10_000, what: 'a leads' });
    await store.load();
    const sw = (i: number): NewEvent => ({
      type: 'switch',
      id: `s${i}`,
      at: i,
      from: 'us-east',
      to: 'us-west',
      epoch: i,
      trigger: { type: 'manual', who: 'ops', reason: 'test' },
      timings: {
        firstFailedProbeAt: null,
        thresholdCrossedAt: null,
        decidedAt: i,
        dnsUpdatedAt: null,
        noticesPublishedAt: null,
        disconnectsRequestedAt: null,
        webhooksCalledAt: null,
      },
      steps: {},
    });
    for (let i = 1; i <= 4; i++)
      await store.commit({ ...state(i), lastSwitchId: `s${i}` }, [
        sw(i),
        { type: 'holding-ended', id: `h${i}`, at: i },
      ]);
    const all = await store.events({ limit: 100 });
    // 8 written, the latest 5 kept.
    expect(all.map((e) => e.seq)).toEqual([4, 5, 6, 7, 8]);
    expect((await store.events({ limit: 2, after: 5 })).map((e) => e.seq)).toEqual([6, 7]);
    expect((await store.events({ limit: 100, type: 'switch' })).map((e) => e.id)).toEqual(['s3', 's4']);
    expect(await store.getEvent('s1')).toBeUndefined();
    const s4 = (await store.getEvent('s4')) as SwitchEvent;
    await store.updateSwitch({ ...s4, timings: { ...s4.timings, noticesPublishedAt: 99 } });
    expect((await store.load()).lastSwitch?.timings.noticesPublishedAt).toBe(99);
  }, 60_000);

  it('lets only the leading controller decide; the other follows, and takes over from where it was', async () => {
    fresh();
    const announced = new Map<string, Decision[]>();
    const executed = new Map<string, number[]>();
    const controllers = ['a', 'b'].map((name) => {
      const x = node(name);
      announced.set(name, []);
      executed.set(name, []);
      const actions: SwitchActions = {
        async announce(d) {
          announced.get(name)?.push(d);
        },
        async execute(event, record) {
          executed.get(name)?.push(event.epoch);
          record('dnsUpdated');
          record('noticesPublished', {});
        },
      };
      const controller = new FailoverController({
        regions: REGIONS,
        checkers: ['a', 'b'],
        store: x.store,
        leadership: x.election,
        recoveryThreshold: 2,
        failureThreshold: 2,
        evaluateEveryMs: 50,
        actions,
      });
      cleanups.push(() => controller.stop());
      return { ...x, name, controller };
    });
    for (const x of controllers) x.election.start();
    for (const x of controllers) await x.controller.start();
    await waitUntil(() => leaders(controllers).length === 1, { timeoutMs: 10_000, what: 'a leader' });
    const report = async (east: boolean) => {
      const at = Date.now();
      for (const x of controllers)
        await x.controller.report(
          ['a', 'b'].flatMap((checker) => [
            observation(checker, 'us-east', east, at),
            observation(checker, 'us-west', true, at),
          ]),
        );
    };
    for (let i = 0; i < 3; i++) await report(true);
    const leader = leaders(controllers)[0] as (typeof controllers)[number];
    const other = controllers.find((x) => x !== leader) as (typeof controllers)[number];
    await waitUntil(() => leader.controller.state().mode.type === 'health', {
      timeoutMs: 5000,
      what: 'the hold ends',
    });
    for (let i = 0; i < 2; i++) await report(false);
    await waitUntil(() => leader.controller.decision().activeRegion === 'us-west', {
      timeoutMs: 5000,
      what: 'the move',
    });
    expect(leader.controller.decision().epoch).toBe(1);
    // The other node decided nothing, and follows what the leader committed.
    await waitUntil(() => other.controller.decision().epoch === 1, {
      timeoutMs: 5000,
      what: 'the follower follows',
    });
    expect(other.controller.decision()).toEqual(leader.controller.decision());
    expect(announced.get(other.name)?.at(-1)).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    expect(executed.get(other.name)).toEqual([]);
    await leader.controller.idle();
    expect(executed.get(leader.name)).toEqual([1]);

    // The leader crashes; the other takes over, with the same decision and no second switch.
    leader.client.close();
    await leader.controller.stop();
    await waitUntil(() => other.controller.leads(), { timeoutMs: TTL_MS * 3, what: 'the other takes over' });
    for (let i = 0; i < 3; i++) await report(false);
    await other.controller.idle();
    expect(other.controller.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    expect(
      (await other.store.events({ limit: 100, type: 'switch' })).map((e) => (e as SwitchEvent).epoch),
    ).toEqual([1]);
    expect(executed.get(other.name)).toEqual([]);
  }, 60_000);
});

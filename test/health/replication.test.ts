import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assessLinks,
  HealthService,
  type ReplicationThresholds,
  replicationCheckpoint,
} from '../../src/health/index.js';
import type { LinkStatus } from '../../src/replication/index.js';
import { type Cluster, eventually, startCluster } from '../harness/cluster.js';

describe('the replication checkpoint over a real two-region cluster', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster(['us-east', 'eu-west'], { engine: 'sqlite' });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  function health(region: 'us-east' | 'eu-west') {
    const running = cluster.regions[region]?.running;
    if (!running) throw new Error(`${region} is not running`);
    return new HealthService({ serviceId: region }).add(replicationCheckpoint(running.replication));
  }

  it('passes while the links tail, and fails the link from a stopped peer (the region only warns)', async () => {
    const east = health('us-east');
    await eventually(async () => (await east.check()).status === 'pass', 'replication to pass in us-east');
    const passing = await east.check();
    expect(passing.checks['replication:lag']?.[0]).toMatchObject({
      componentId: 'replication',
      status: 'pass',
      observedUnit: 'ms',
      critical: false,
    });
    expect(typeof passing.checks['replication:lag']?.[0]?.observedValue).toBe('number');

    await cluster.regions['eu-west']?.stop();
    await eventually(
      async () => (await east.check()).checks['replication:lag']?.[0]?.status === 'fail',
      'the link from the stopped peer to fail',
    );
    const report = await east.check();
    expect(report.status).toBe('warn');
    expect(report.checks['replication:lag']?.[0]?.output).toMatch(
      /^link from eu-west retrying \(attempt \d+\)/,
    );
    await cluster.regions['eu-west']?.start();
  });

  it('passes in a region without peers', async () => {
    const alone = new HealthService({ serviceId: 'solo' }).add(
      replicationCheckpoint({ status: async () => ({ region: 'solo', links: [] }) }),
    );
    const report = await alone.check();
    expect(report.status).toBe('pass');
    expect(report.checks['replication:lag']?.[0]?.observedValue).toBe(0);
  });
});

describe('assessLinks thresholds', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const thresholds: ReplicationThresholds = {
    maxLagMs: 5000,
    maxLagChanges: 10_000,
    maxContactAgeMs: 30_000,
  };
  const link = (over: Partial<LinkStatus> = {}): LinkStatus => ({
    peer: 'eu-west',
    target: 'registry',
    state: { type: 'tailing' },
    cursor: 10,
    peerLastSeq: 10,
    lagChanges: 0,
    lagMs: 40,
    lastAppliedAt: now - 1000,
    lastContactAt: now - 1000,
    lastError: null,
    applied: 10,
    stale: 0,
    deadLetters: 0,
    ...over,
  });

  it('passes a link that is caught up, whatever the lag of its last change', () => {
    expect(assessLinks([link({ lagMs: 60_000 })], now, thresholds)).toEqual({
      status: 'pass',
      observedValue: 0,
      observedUnit: 'ms',
    });
  });

  it('fails past each threshold and reports the worst lag', () => {
    const behind = assessLinks(
      [link({ lagChanges: 3, lagMs: 7000 }), link({ peer: 'ap-south', lagChanges: 1, lagMs: 100 })],
      now,
      thresholds,
    );
    expect(behind).toMatchObject({ status: 'fail', observedValue: 7000 });
    expect(behind.output).toBe('link from eu-west is 7000 ms behind (over 5000)');
    expect(assessLinks([link({ lagChanges: 10_001, lagMs: 10 })], now, thresholds).output).toBe(
      'link from eu-west has 10001 changes to apply (over 10000)',
    );
    expect(assessLinks([link({ lastContactAt: now - 31_000 })], now, thresholds).output).toBe(
      'no answer from eu-west for 31000 ms (over 30000)',
    );
    const stopped = assessLinks([link({ state: { type: 'stopped' } })], now, thresholds);
    expect(stopped).toMatchObject({ status: 'fail', output: 'link from eu-west stopped' });
  });

  it('warns for dead letters and for a link that has not had an answer yet', () => {
    expect(assessLinks([link({ deadLetters: 2 })], now, thresholds)).toMatchObject({
      status: 'warn',
      output: '2 dead letters from eu-west',
    });
    expect(
      assessLinks([link({ state: { type: 'starting' }, lastContactAt: null })], now, thresholds).status,
    ).toBe('warn');
  });
});

/**
 * LiveView on its own, with an injected clock and timers: what it makes of analytics' real SQLite
 * store (rates placed per second, the latest switches of the mirrored log, devices with gaps), how
 * a source that cannot be reached shows, the controller's state read from the second control node
 * when the first is down, and that stop() leaves nothing scheduled.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type LiveSnapshot, LiveView } from '../../src/analytics/dashboard/index.js';
import { type AnalyticsQueries, SqliteAnalyticsStore } from '../../src/analytics/index.js';
import { createLogger, type Timers } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { BusEvent } from '../../src/events/index.js';
import { ControlClient, type ControlEndpoint } from '../../src/failover/index.js';
import { eventually } from '../harness/cluster.js';
import { freePort } from '../harness/process.js';

const NOW = 1_800_000_030_400;
const config = parseConfig({
  logging: { level: 'silent' },
  regions: [
    { name: 'us-east', priority: 1, address: '127.0.0.51' },
    { name: 'us-west', priority: 2, address: '127.0.0.52' },
  ],
});

/** Timers the test fires by hand; nothing runs by itself. */
class ManualTimers implements Timers {
  readonly pending = new Map<number, { callback: () => void; ms: number }>();
  #next = 0;
  setTimeout(callback: () => void, ms: number): unknown {
    const id = ++this.#next;
    this.pending.set(id, { callback, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    const due = [...this.pending.entries()];
    this.pending.clear();
    for (const [, t] of due) t.callback();
  }
}

function telemetry(region: string, offset: number, time: number, seq: number): BusEvent {
  return {
    id: `${region}-${offset}`,
    offset,
    region,
    time,
    source: { type: 'rule', rule: 'telemetry' },
    topic: 'devices/sensor-1/telemetry',
    thingName: 'sensor-1',
    payload: { type: 'json', value: { seq } },
  };
}

function switchEntry(seq: number, to: string) {
  const at = NOW - 100_000 + seq;
  return {
    seq,
    type: 'switch',
    at,
    event: {
      type: 'switch',
      id: `s${seq}`,
      seq,
      at,
      from: to === 'us-west' ? 'us-east' : 'us-west',
      to,
      epoch: seq,
      trigger: { type: 'health', region: 'us-east', status: 'down' },
      timings: {
        firstFailedProbeAt: at - 700,
        thresholdCrossedAt: at - 100,
        decidedAt: at,
        dnsUpdatedAt: at + 3,
        noticesPublishedAt: at + 20,
        disconnectsRequestedAt: null,
        webhooksCalledAt: null,
      },
      steps: {},
    },
  };
}

describe('LiveView', () => {
  let dir: string;
  let store: SqliteAnalyticsStore;
  let view: LiveView | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-live-'));
    store = await SqliteAnalyticsStore.open({ path: join(dir, 'analytics.db'), retentionSeconds: 0 });
  });
  afterEach(async () => {
    view?.stop();
    view = undefined;
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  function queriesOf(s: SqliteAnalyticsStore): AnalyticsQueries {
    return {
      rates: (o) => s.rates(o),
      devices: (o) => s.devices(o),
      device: (t) => s.device(t),
      totals: () => s.totals(),
      timeline: (o) => s.timeline(o),
      ingest: () => [],
    };
  }

  /** `controlNodes`: the control nodes it reads; default one that does not answer. */
  async function startView(timers: ManualTimers, controlNodes?: ControlEndpoint[]): Promise<LiveView> {
    // Nothing listens on these ports: control and both regions are unreachable.
    const dead = `http://127.0.0.1:${await freePort()}`;
    view = new LiveView({
      queries: queriesOf(store),
      config,
      access: () => ({ token: 'reader-token' }),
      control: new ControlClient(controlNodes ?? [{ name: 'control', url: dead }], 'reader-token'),
      regionUrls: { 'us-east': dead },
      logger: createLogger({ level: 'silent' }),
      clock: { now: () => NOW },
      timers,
      requestTimeoutMs: 1000,
    });
    view.start();
    return view;
  }

  it('builds the snapshot from the store, and shows unreachable sources as such', async () => {
    // Three messages in the second 5 s ago, one in the last full second, one in the current one.
    const second = Math.floor(NOW / 1000) * 1000;
    await store.ingest(
      'us-east',
      [
        telemetry('us-east', 1, second - 5000 + 10, 1),
        telemetry('us-east', 2, second - 5000 + 20, 2),
        telemetry('us-east', 3, second - 5000 + 30, 5),
        telemetry('us-east', 4, second - 1000 + 1, 6),
        telemetry('us-east', 5, second + 1, 7),
      ],
      6,
    );
    await store.appendTimeline(
      Array.from({ length: 12 }, (_, i) => switchEntry(i + 1, i % 2 ? 'us-east' : 'us-west')),
    );
    const timers = new ManualTimers();
    const live = await startView(timers);
    const seen: LiveSnapshot[] = [];
    live.subscribe((s) => seen.push(s));

    let snapshot = live.snapshot();
    await eventually(async () => {
      snapshot = live.snapshot();
      return (
        snapshot.control.error !== undefined &&
        snapshot.regions.every((r) => r.errors.health !== undefined) &&
        snapshot.switches.length > 0
      );
    }, 'every source read once');

    expect(snapshot.at).toBe(NOW);
    expect(snapshot.active).toBeNull();
    expect(snapshot.control).toMatchObject({ reachable: false, lastContactAt: null });
    expect(snapshot.control.error).toMatch(/ECONNREFUSED/);
    const [east, west] = snapshot.regions;
    expect(east).toMatchObject({ name: 'us-east', role: 'primary', connected: null, controllerStatus: null });
    expect(east?.health.status).toBe('unreachable');
    expect(east?.errors.connections).toMatch(/ECONNREFUSED/);
    expect(west).toMatchObject({ name: 'us-west', role: 'secondary' });
    expect(west?.errors.health).toBe('no URL configured for this region');

    // 60 full seconds per region, zeros included; the current, partial second is not shown yet.
    const rates = snapshot.rates['us-east'] ?? [];
    expect(rates).toHaveLength(60);
    expect(rates[0]?.[0]).toBe(second - 60_000);
    expect(rates[59]).toEqual([second - 1000, 1]);
    expect(rates[55]).toEqual([second - 5000, 3]);
    expect(rates.reduce((n, [, m]) => n + m, 0)).toBe(4);
    expect((snapshot.rates['us-west'] ?? []).every(([, m]) => m === 0)).toBe(true);

    // The latest ten switches, newest first, with their timings.
    expect(snapshot.switches.map((s) => s.seq)).toEqual([12, 11, 10, 9, 8, 7, 6, 5, 4, 3]);
    expect(snapshot.switches[0]).toMatchObject({ to: 'us-east', epoch: 12, trigger: 'health' });
    expect(snapshot.switches[0]?.timings.dnsUpdatedAt).toBe((snapshot.switches[0]?.at ?? 0) + 3);

    // sequence 3 and 4 never arrived.
    expect(snapshot.gapDevices).toHaveLength(1);
    expect(snapshot.gapDevices[0]).toMatchObject({ thingName: 'sensor-1', missing: 2 });
    expect(seen.length).toBeGreaterThan(0);

    // Every loop waits for its next turn on the injected timers: control, two regions, the store.
    expect(timers.pending.size).toBe(4);
    expect([...timers.pending.values()].map((t) => t.ms).sort()).toEqual([1000, 1000, 1000, 500]);

    // A store that fails shows as failing; the rest of the snapshot stays.
    await store.close();
    timers.fireAll();
    await eventually(async () => live.snapshot().analyticsError !== undefined, 'the store failure shown');
    expect(live.snapshot().switches).toHaveLength(10);
    expect(live.snapshot().regions).toHaveLength(2);
  });

  it("reads the controller's state from the second control node when the first is down", async () => {
    const second = createServer((req, res) => {
      if (req.url !== '/v1/failover/state' || req.headers.authorization !== 'Bearer reader-token')
        return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          activeRegion: 'us-west',
          epoch: 3,
          decidedAt: NOW - 1000,
          mode: { type: 'health' },
          noHealthyRegion: false,
          failbackAvailable: null,
          regions: [
            { region: 'us-east', status: 'down' },
            { region: 'us-west', status: 'up' },
          ],
          lastSwitch: null,
        }),
      );
    });
    second.listen(0, '127.0.0.1');
    await once(second, 'listening');
    try {
      const live = await startView(new ManualTimers(), [
        { name: 'ctl-a', url: `http://127.0.0.1:${await freePort()}` },
        { name: 'ctl-b', url: `http://127.0.0.1:${(second.address() as AddressInfo).port}` },
      ]);
      await eventually(async () => live.snapshot().active !== null, 'the state read');
      const snapshot = live.snapshot();
      expect(snapshot.active).toMatchObject({ region: 'us-west', epoch: 3, mode: 'health' });
      expect(snapshot.control).toMatchObject({ reachable: true, lastContactAt: NOW });
      expect(snapshot.regions.map((r) => r.controllerStatus)).toEqual(['down', 'up']);
    } finally {
      second.closeAllConnections();
      second.close();
    }
  });

  it('stop() clears every timer and tells no listener anything more', async () => {
    const timers = new ManualTimers();
    const live = await startView(timers);
    await eventually(async () => timers.pending.size === 4, 'every loop waiting for its turn');
    let heard = 0;
    live.subscribe(() => heard++);
    live.stop();
    expect(timers.pending.size).toBe(0);
    const before = live.snapshot();
    await new Promise((r) => setTimeout(r, 100));
    expect(heard).toBe(0);
    expect(live.snapshot()).toBe(before);
  });
});

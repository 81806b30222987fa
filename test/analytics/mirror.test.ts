/**
 * The decision-log mirror when the control API is away: visible as unreachable, retried; and with
 * several control nodes, read from the next node when the first is down.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ControlMirror, SqliteAnalyticsStore } from '../../src/analytics/index.js';
import { ControlClient } from '../../src/failover/index.js';
import { eventually } from '../harness/cluster.js';
import { freePort } from '../harness/process.js';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function openStore(): Promise<SqliteAnalyticsStore> {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-analytics-mirror-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const store = await SqliteAnalyticsStore.open({ path: join(dir, 'analytics.db') });
  cleanup.push(() => store.close());
  return store;
}

it('shows an unreachable control API in its status and keeps retrying from the last mirrored seq', async () => {
  const store = await openStore();
  await store.appendTimeline([{ seq: 7, type: 'switch', at: 1, event: { type: 'switch', seq: 7 } }]);
  let sleeps = 0;
  const mirror = new ControlMirror({
    control: new ControlClient([{ name: 'control', url: `http://127.0.0.1:${await freePort()}` }], 't'),
    store,
    intervalMs: 10,
    sleep: async () => {
      sleeps++;
      await new Promise((r) => setTimeout(r, 5));
    },
  });
  cleanup.push(() => mirror.close());
  await mirror.start();
  await eventually(async () => sleeps >= 3, 'three attempts');
  const status = mirror.status();
  expect(status.state.type).toBe('unreachable');
  expect(status.state.type === 'unreachable' && status.state.error).toMatch(/control at .*ECONNREFUSED/);
  expect(status.lastSeq).toBe(7);
  expect(status.lastContactAt).toBeNull();
});

it('reads the decision log from the second control node when the first is down', async () => {
  const store = await openStore();
  const asked: string[] = [];
  // The second node: its decision log holds two entries; it wants the analytics token.
  const second = createServer((req, res) => {
    asked.push(`${req.url} ${req.headers.authorization}`);
    const after = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('after'));
    const items = [
      { seq: 1, type: 'switch', at: 10, to: 'us-west' },
      { seq: 2, type: 'override-set', at: 11 },
    ].filter((e) => e.seq > after);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items }));
  });
  second.listen(0, '127.0.0.1');
  await once(second, 'listening');
  cleanup.push(async () => {
    second.closeAllConnections();
    second.close();
  });
  const secondUrl = `http://127.0.0.1:${(second.address() as AddressInfo).port}`;
  const mirror = new ControlMirror({
    control: new ControlClient(
      [
        { name: 'ctl-a', url: `http://127.0.0.1:${await freePort()}` },
        { name: 'ctl-b', url: secondUrl },
      ],
      'analytics-token',
    ),
    store,
    intervalMs: 10,
  });
  cleanup.push(() => mirror.close());
  await mirror.start();
  await eventually(async () => mirror.status().lastSeq === 2, 'both entries mirrored');
  expect(mirror.status()).toMatchObject({ state: { type: 'following' }, controlUrl: secondUrl });
  expect((await store.timeline({ limit: 10 })).map((e) => e.seq)).toEqual([1, 2]);
  expect(asked[0]).toBe('/v1/failover/events?after=0&limit=500 Bearer analytics-token');
});

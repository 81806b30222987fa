/** The decision-log mirror when the control API is away: visible as unreachable, retried. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ControlMirror, SqliteAnalyticsStore } from '../../src/analytics/index.js';
import { eventually } from '../harness/cluster.js';
import { freePort } from '../harness/process.js';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

it('shows an unreachable control API in its status and keeps retrying from the last mirrored seq', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-analytics-mirror-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const store = await SqliteAnalyticsStore.open({ path: join(dir, 'analytics.db') });
  cleanup.push(() => store.close());
  await store.appendTimeline([{ seq: 7, type: 'switch', at: 1, event: { type: 'switch', seq: 7 } }]);
  let sleeps = 0;
  const mirror = new ControlMirror({
    controlUrl: `http://127.0.0.1:${await freePort()}`,
    token: 't',
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
  expect(status.lastSeq).toBe(7);
  expect(status.lastContactAt).toBeNull();
});

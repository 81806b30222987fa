/**
 * Analytics killed with SIGKILL while ingesting two regions: after a restart from the same
 * database nothing is counted twice and nothing is skipped, because each batch's effects and the
 * region's next offset commit in one transaction.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { RegionIngestor, SqliteAnalyticsStore } from '../../src/analytics/index.js';
import { encodePayload, eventRoutes, type NewEvent, SqliteEventBus } from '../../src/events/index.js';
import { startApi, type TestApi } from '../events/support.js';
import { eventually } from '../harness/cluster.js';

/** Distinct message k carries seq k; r0 holds 1..2000, r1 holds 1501..3000 (500 in both). */
const R0 = { from: 1, to: 2000 };
const R1 = { from: 1501, to: 3000 };

function message(k: number): NewEvent {
  return {
    id: `msg-${k}`,
    time: Date.now(),
    source: { type: 'rule', rule: 'telemetry' },
    topic: 'devices/d1/telemetry',
    thingName: 'd1',
    payload: encodePayload(Buffer.from(JSON.stringify({ messageId: `msg-${k}`, seq: k }))),
  };
}

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function region(range: { from: number; to: number }): Promise<TestApi> {
  let bus: SqliteEventBus | undefined;
  const api = await startApi(async (service, metrics, dir) => {
    bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'r', metrics });
    return [eventRoutes(bus, service)];
  });
  cleanup.push(async () => {
    await api.close();
    await bus?.close();
  });
  for (let k = range.from; k <= range.to; k++) await bus?.append(message(k));
  return api;
}

it('counts every message once after being killed mid-ingestion and restarted', async () => {
  const [r0, r1] = [await region(R0), await region(R1)];
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-analytics-crash-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'analytics.db');
  // One analytics token for both regions, as every region ensures the shared one at start.
  const token = r0.tokens.reader;
  await r1.service.ensureToken(token, 'analytics', 'reader');

  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(new URL('./crash-ingestor.ts', import.meta.url)),
      path,
      token,
      r0.url,
      r1.url,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let batches = 0;
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      batches += d.toString().split('\n').length - 1;
      // Killed part-way: both regions have started, neither is done.
      if (batches >= 30) resolve();
    });
    void exited.then(() => reject(new Error(`ingestor exited early: ${stderr}`)));
  });
  child.kill('SIGKILL');
  await exited;

  const store = await SqliteAnalyticsStore.open({ path });
  cleanup.push(() => store.close());
  const partial = await store.totals();
  expect(partial.messages).toBeGreaterThan(0);
  expect(partial.messages).toBeLessThan(3000);
  const ingestors = [r0, r1].map(
    (r, i) => new RegionIngestor({ region: `r${i}`, url: r.url, token, store, batchSize: 500, waitMs: 100 }),
  );
  for (const ingestor of ingestors) {
    cleanup.push(() => ingestor.close());
    await ingestor.start();
  }
  await eventually(
    async () => ingestors.every((i) => i.status().lagEvents === 0),
    'both regions read to the end',
  );
  expect(await store.totals()).toEqual({
    messages: 3000,
    duplicates: 500,
    devices: 1,
    devicesWithGaps: 0,
    missing: 0,
  });
  expect(await store.device('d1')).toMatchObject({ messages: 3000, firstSeq: 1, lastSeq: 3000, missing: 0 });
  expect(ingestors.map((i) => i.status().read)).toEqual([2000, 1500]);
  expect(ingestors.map((i) => i.status().nextOffset)).toEqual([2001, 1501]);
});

import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { encodePayload, type NewEvent, payloadBytes, SqliteEventBus } from '../../src/events/index.js';
import { tempDir } from './support.js';

let dir: string;
let removeDir: () => Promise<void>;
const open: SqliteEventBus[] = [];

beforeEach(async () => {
  ({ dir, remove: removeDir } = await tempDir());
});
afterEach(async () => {
  for (const bus of open.splice(0)) await bus.close();
  await removeDir();
});

async function openBus(options: Partial<Parameters<typeof SqliteEventBus.open>[0]> = {}) {
  const bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'us-east', ...options });
  open.push(bus);
  return bus;
}

function event(n: number, extra: Partial<NewEvent> = {}): NewEvent {
  return {
    id: `evt-${n}`,
    time: 1_700_000_000_000 + n,
    source: { type: 'rule', rule: 'r1' },
    topic: `dev/t${n}/data`,
    thingName: `t${n}`,
    clientId: `c${n}`,
    payload: encodePayload(Buffer.from(JSON.stringify({ n }))),
    ...extra,
  };
}

describe('SQLite event bus', () => {
  it('keeps acknowledged events across close and reopen, and continues their offsets', async () => {
    const bus = await openBus();
    expect(await bus.lastOffset()).toBe(0);
    expect(await bus.firstOffset()).toBe(1);
    const results = await Promise.all([1, 2, 3].map((n) => bus.append(event(n))));
    expect(results.map((r) => r.offset)).toEqual([1, 2, 3]);
    await bus.close();
    open.pop();

    const again = await openBus();
    const read = await again.read({ from: 1, limit: 10 });
    expect(read.events.map((e) => e.offset)).toEqual([1, 2, 3]);
    expect(read.events[1]).toEqual({
      ...event(2),
      offset: 2,
      region: 'us-east',
      payload: { type: 'json', value: { n: 2 } },
    });
    expect(read).toMatchObject({ next: 4, firstOffset: 1, lastOffset: 3 });
    expect(read.gap).toBeUndefined();
    expect((await again.append(event(4))).offset).toBe(4);
  });

  it('keeps JSON as JSON and anything else byte for byte as base64', async () => {
    const bus = await openBus();
    const binary = Buffer.from([0, 255, 1, 254, 0x7b]);
    await bus.append(event(1, { payload: encodePayload(binary) }));
    await bus.append(event(2, { payload: encodePayload(Buffer.from('not json')) }));
    await bus.append(event(3, { payload: encodePayload(Buffer.from('[1,"a",{"b":null}]')) }));
    const [a, b, c] = (await bus.read({ from: 0, limit: 10 })).events;
    expect(a?.payload).toEqual({ type: 'base64', data: binary.toString('base64') });
    expect(payloadBytes(a?.payload ?? { type: 'json', value: null })).toEqual(binary);
    expect(b?.payload).toEqual({ type: 'base64', data: Buffer.from('not json').toString('base64') });
    expect(c?.payload).toEqual({ type: 'json', value: [1, 'a', { b: null }] });
  });

  it('answers a known id with its existing offset and writes nothing', async () => {
    const metrics = new Registry();
    const bus = await openBus({ metrics });
    const first = event(1, { id: 'device-msg-42' });
    expect(await bus.append(first)).toEqual({ offset: 1, appended: true });
    await bus.append(event(2));
    // A QoS1 re-delivery: same id, even with another payload.
    expect(await bus.append(event(3, { id: 'device-msg-42' }))).toEqual({ offset: 1, appended: false });
    // Concurrent duplicates within one group commit.
    const dup = await Promise.all([bus.append(event(4, { id: 'x' })), bus.append(event(5, { id: 'x' }))]);
    expect(dup).toEqual([
      { offset: 3, appended: true },
      { offset: 3, appended: false },
    ]);
    const read = await bus.read({ from: 1, limit: 10 });
    expect(read.events.map((e) => e.id)).toEqual(['device-msg-42', event(2).id, 'x']);
    expect(read.events[0]?.topic).toBe('dev/t1/data');
    expect((await bus.stats()).count).toBe(3);
    expect(await metrics.metrics()).toMatch(/iotdr_events_appended_total 3/);
  });

  it('assigns gap-free offsets to concurrent appends', async () => {
    const bus = await openBus();
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => bus.append(event(i))));
    expect(results.map((r) => r.offset).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    const page = await bus.read({ from: 101, limit: 50 });
    expect(page.events.map((e) => e.offset)).toEqual(Array.from({ length: 50 }, (_, i) => 101 + i));
    expect(page.next).toBe(151);
  });

  it('refuses an event without a usable id', async () => {
    const bus = await openBus();
    await expect(bus.append(event(1, { id: '' }))).rejects.toMatchObject({
      code: 'IOTDR_EVENTS_INVALID_EVENT',
    });
    await expect(bus.append(event(1, { id: 'x'.repeat(257) }))).rejects.toMatchObject({
      code: 'IOTDR_EVENTS_INVALID_EVENT',
    });
    expect(await bus.lastOffset()).toBe(0);
  });

  it('wakes a long poll on append, and ends it on abort', async () => {
    const bus = await openBus();
    await bus.append(event(1));
    const waiting = bus.read({ from: 2, limit: 10, waitMs: 20_000 });
    setTimeout(() => void bus.append(event(2)), 50);
    const started = Date.now();
    const read = await waiting;
    expect(read.events.map((e) => e.offset)).toEqual([2]);
    expect(Date.now() - started).toBeLessThan(10_000);

    const controller = new AbortController();
    const aborted = bus.read({ from: 3, limit: 10, waitMs: 20_000, signal: controller.signal });
    controller.abort();
    expect((await aborted).events).toEqual([]);
  });

  it('removes events older than maxAgeSeconds and says so to a reader behind', async () => {
    let now = 1_700_000_000_000;
    const bus = await openBus({ clock: { now: () => now }, retention: { maxAgeSeconds: 60, intervalMs: 0 } });
    for (let n = 0; n < 5; n++) await bus.append(event(n, { time: now + n * 10_000 }));
    now += 100_000; // events at +0, +10 s, +20 s, +30 s, +40 s are now 100, 90, 80, 70, 60 s old
    expect(await bus.enforceRetention()).toEqual({ removed: 4, firstOffset: 5 });
    const read = await bus.read({ from: 2, limit: 10 });
    expect(read.gap).toEqual({ requested: 2, firstOffset: 5 });
    expect(read.events.map((e) => e.offset)).toEqual([5]);
    expect((await bus.read({ from: 5, limit: 10 })).gap).toBeUndefined();
    now += 3_600_000;
    expect(await bus.enforceRetention()).toEqual({ removed: 1, firstOffset: 6 });
    expect(await bus.stats()).toEqual({ firstOffset: 6, lastOffset: 5, count: 0, bytes: 0 });
    // Offsets are never reused, even with the log empty.
    expect((await bus.append(event(9, { time: now }))).offset).toBe(6);
  });

  it('removes the oldest events while the log is over maxBytes, also on its own timer', async () => {
    let tick: (() => void) | undefined;
    const bus = await openBus({
      retention: { maxAgeSeconds: 0, maxBytes: 20_000, intervalMs: 1000 },
      every: (_ms, fn) => {
        tick = fn;
        return () => {
          tick = undefined;
        };
      },
    });
    const big = Buffer.alloc(1000, 0x61);
    for (let n = 0; n < 50; n++) await bus.append(event(n, { payload: encodePayload(big) }));
    const before = await bus.stats();
    expect(before.count).toBe(50);
    expect(before.bytes).toBeGreaterThan(50_000);
    tick?.();
    const after = await bus.stats();
    expect(after.bytes).toBeLessThanOrEqual(20_000);
    expect(after.bytes).toBeGreaterThan(15_000);
    expect(after.lastOffset).toBe(50);
    expect(after.firstOffset).toBe(50 - after.count + 1);
    const read = await bus.read({ from: 0, limit: 100 });
    expect(read.events[0]?.offset).toBe(after.firstOffset);
    expect(read.gap).toEqual({ requested: 0, firstOffset: after.firstOffset });
  });
});

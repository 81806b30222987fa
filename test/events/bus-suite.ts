/**
 * The EventBus contract, run against every engine (bus.sqlite.test.ts, bus.jetstream.test.ts). It
 * checks what a reader of the bus would notice: offsets, payloads byte for byte, de-duplication by
 * id, long polls, retention and what a restart keeps.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { type EventBus, encodePayload, type NewEvent, payloadBytes } from '../../src/events/index.js';

export interface BusOpenOptions {
  retention?: { maxAgeSeconds?: number; maxBytes?: number };
  metrics?: Registry;
}

export interface BusFixture {
  /** The engine's bus on a fresh, empty log (its own file or stream). */
  open(options?: BusOpenOptions): Promise<EventBus>;
  /** Another bus on the same log, as another process has it (a second writer and reader). */
  another(bus: EventBus): Promise<EventBus>;
  /**
   * Closes the bus and brings the log back as after a crash of what holds it (the region process
   * for SQLite; the NATS server, killed with SIGKILL, for JetStream); resolves with a bus on it.
   */
  restart(bus: EventBus): Promise<EventBus>;
  /** The engine's clock, in ms; `elapse` moves it on (injected for SQLite, real for JetStream). */
  now(): number;
  elapse(ms: number): Promise<void>;
  /** Closes every bus opened and deletes the logs. */
  cleanup(): Promise<void>;
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

/** Every event from `from` to the end of the log. */
async function readAll(bus: EventBus, from = 1) {
  const events = [];
  for (let at = from; ; ) {
    const page = await bus.read({ from: at, limit: 1000 });
    events.push(...page.events);
    if (page.events.length === 0) return events;
    at = page.next;
  }
}

export function busSuite(engine: string, makeFixture: () => BusFixture): void {
  describe(`event bus contract: ${engine}`, () => {
    let fx: BusFixture;
    const fixture = () => {
      fx = makeFixture();
      return fx;
    };
    afterEach(async () => {
      await fx?.cleanup();
    });

    it('keeps acknowledged events across a restart, and continues their offsets', async () => {
      const f = fixture();
      const bus = await f.open();
      expect(await bus.lastOffset()).toBe(0);
      expect(await bus.firstOffset()).toBe(1);
      const results = await Promise.all([1, 2, 3].map((n) => bus.append(event(n))));
      expect(results.map((r) => r.offset).sort()).toEqual([1, 2, 3]);

      const again = await f.restart(bus);
      const read = await again.read({ from: 1, limit: 10 });
      expect(read.events.map((e) => e.offset)).toEqual([1, 2, 3]);
      const second = read.events.find((e) => e.id === 'evt-2');
      expect(second).toEqual({
        ...event(2),
        offset: second?.offset,
        region: bus.region,
        payload: { type: 'json', value: { n: 2 } },
      });
      expect(read).toMatchObject({ next: 4, firstOffset: 1, lastOffset: 3 });
      expect(read.gap).toBeUndefined();
      expect(await again.append(event(4))).toEqual({ offset: 4, appended: true });
      // The ids it knew before the restart are still known.
      expect(await again.append(event(2))).toEqual({ offset: second?.offset, appended: false });
    });

    it('keeps JSON as JSON and anything else byte for byte as base64', async () => {
      const bus = await fixture().open();
      const binary = Buffer.from([0, 255, 1, 254, 0x7b, 0x0a, 0x0a]);
      await bus.append(event(1, { payload: encodePayload(binary) }));
      await bus.append(event(2, { payload: encodePayload(Buffer.from('not json')) }));
      await bus.append(event(3, { payload: encodePayload(Buffer.from('[1,"a",{"b":null}]')) }));
      await bus.append(event(4, { topic: 'dév/ünïcode/\n/data', payload: encodePayload(Buffer.alloc(0)) }));
      const [a, b, c, d] = (await bus.read({ from: 0, limit: 10 })).events;
      expect(a?.payload).toEqual({ type: 'base64', data: binary.toString('base64') });
      expect(payloadBytes(a?.payload ?? { type: 'json', value: null })).toEqual(binary);
      expect(b?.payload).toEqual({ type: 'base64', data: Buffer.from('not json').toString('base64') });
      expect(c?.payload).toEqual({ type: 'json', value: [1, 'a', { b: null }] });
      expect(d?.topic).toBe('dév/ünïcode/\n/data');
      expect(d?.payload).toEqual({ type: 'base64', data: '' });
    });

    it('answers a known id with its existing offset and writes nothing', async () => {
      const metrics = new Registry();
      const bus = await fixture().open({ metrics });
      const first = event(1, { id: 'device-msg-42' });
      expect(await bus.append(first)).toEqual({ offset: 1, appended: true });
      await bus.append(event(2));
      // A QoS1 re-delivery: same id, even with another payload.
      expect(await bus.append(event(3, { id: 'device-msg-42' }))).toEqual({ offset: 1, appended: false });
      // Concurrent duplicates.
      const dup = await Promise.all([bus.append(event(4, { id: 'x' })), bus.append(event(5, { id: 'x' }))]);
      expect(dup.map((r) => r.offset)).toEqual([3, 3]);
      expect(dup.filter((r) => r.appended)).toHaveLength(1);
      const read = await bus.read({ from: 1, limit: 10 });
      expect(read.events.map((e) => e.id)).toEqual(['device-msg-42', event(2).id, 'x']);
      expect(read.events[0]?.topic).toBe('dev/t1/data');
      expect((await bus.stats()).count).toBe(3);
      expect(await metrics.metrics()).toMatch(/iotdr_events_appended_total 3/);
    });

    it('assigns gap-free offsets to concurrent appends, from two writers too', async () => {
      const f = fixture();
      const bus = await f.open();
      const other = await f.another(bus);
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? bus : other).append(event(i))),
      );
      expect(results.map((r) => r.offset).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 300 }, (_, i) => i + 1),
      );
      const page = await bus.read({ from: 101, limit: 50 });
      expect(page.events.map((e) => e.offset)).toEqual(Array.from({ length: 50 }, (_, i) => 101 + i));
      expect(page.next).toBe(151);
      // Each writer's events read back from the other at the offset it was given.
      const byId = new Map((await readAll(other)).map((e) => [e.id, e.offset]));
      for (const [i, r] of results.entries()) expect(byId.get(`evt-${i}`)).toBe(r.offset);
    });

    it('refuses an event without a usable id and writes nothing', async () => {
      const bus = await fixture().open();
      await expect(bus.append(event(1, { id: '' }))).rejects.toMatchObject({
        code: 'IOTDR_EVENTS_INVALID_EVENT',
      });
      await expect(bus.append(event(1, { id: 'x'.repeat(257) }))).rejects.toMatchObject({
        code: 'IOTDR_EVENTS_INVALID_EVENT',
      });
      await expect(bus.append(event(1, { time: 1.5 }))).rejects.toMatchObject({
        code: 'IOTDR_EVENTS_INVALID_EVENT',
      });
      expect(await bus.lastOffset()).toBe(0);
    });

    it('answers a read past the end with nothing, and limits a read to what it asked', async () => {
      const bus = await fixture().open();
      for (let n = 1; n <= 5; n++) await bus.append(event(n));
      expect(await bus.read({ from: 9, limit: 10 })).toMatchObject({ events: [], next: 9, lastOffset: 5 });
      const page = await bus.read({ from: 2, limit: 2 });
      expect(page.events.map((e) => e.offset)).toEqual([2, 3]);
      expect(page.next).toBe(4);
      expect((await bus.read({ from: 1, limit: -1 })).events).toHaveLength(1);
    });

    it('wakes a long poll on an append, its own or another writer’s, and ends it on abort', async () => {
      const f = fixture();
      const bus = await f.open();
      const other = await f.another(bus);
      await bus.append(event(1));
      const waiting = bus.read({ from: 2, limit: 10, waitMs: 20_000 });
      setTimeout(() => void bus.append(event(2)), 50);
      expect((await waiting).events.map((e) => e.offset)).toEqual([2]);

      const fromOther = bus.read({ from: 3, limit: 10, waitMs: 20_000 });
      setTimeout(() => void other.append(event(3)), 50);
      expect((await fromOther).events.map((e) => e.id)).toEqual(['evt-3']);

      const controller = new AbortController();
      const aborted = bus.read({ from: 4, limit: 10, waitMs: 20_000, signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      expect((await aborted).events).toEqual([]);

      // A wait that runs out answers empty, from where it waited.
      expect(await bus.read({ from: 4, limit: 10, waitMs: 100 })).toMatchObject({ events: [], next: 4 });
    });

    it('tells onAppend listeners the newest offset', async () => {
      const bus = await fixture().open();
      const seen: number[] = [];
      const off = bus.onAppend((last) => seen.push(last));
      await bus.append(event(1));
      await bus.append(event(2));
      await waitUntil(() => seen.includes(2), { timeoutMs: 10_000, what: 'the listener to hear offset 2' });
      off();
      await bus.append(event(3));
      await new Promise((r) => setTimeout(r, 300));
      expect(seen).not.toContain(3);
    });

    it('removes events older than maxAgeSeconds and says so to a reader behind', async () => {
      const f = fixture();
      const bus = await f.open({ retention: { maxAgeSeconds: 3 } });
      for (let n = 1; n <= 4; n++) await bus.append(event(n, { time: f.now() }));
      await f.elapse(4000);
      await bus.append(event(5, { time: f.now() }));
      let removed = 0;
      await waitUntil(
        async () => {
          const r = await bus.enforceRetention();
          removed += r.removed;
          return r.firstOffset === 5;
        },
        { timeoutMs: 10_000, intervalMs: 100, what: 'the events older than 3 s to go' },
      );
      expect(removed).toBe(4);
      const read = await bus.read({ from: 2, limit: 10 });
      expect(read.gap).toEqual({ requested: 2, firstOffset: 5 });
      expect(read.events.map((e) => e.offset)).toEqual([5]);
      expect((await bus.read({ from: 5, limit: 10 })).gap).toBeUndefined();
      await f.elapse(4000);
      await waitUntil(async () => (await bus.enforceRetention()).firstOffset === 6, {
        timeoutMs: 10_000,
        intervalMs: 100,
        what: 'the last event to go',
      });
      expect(await bus.stats()).toEqual({ firstOffset: 6, lastOffset: 5, count: 0, bytes: 0 });
      // Offsets are never reused, even with the log empty.
      expect((await bus.append(event(9, { time: f.now() }))).offset).toBe(6);
    });

    it('removes the oldest events while the log is over maxBytes', async () => {
      const bus = await fixture().open({ retention: { maxAgeSeconds: 0, maxBytes: 20_000 } });
      const big = Buffer.alloc(1000, 0x61);
      for (let n = 0; n < 50; n++) await bus.append(event(n, { payload: encodePayload(big) }));
      await bus.enforceRetention();
      const after = await bus.stats();
      expect(after.bytes).toBeLessThanOrEqual(20_000);
      expect(after.bytes).toBeGreaterThan(15_000);
      expect(after.lastOffset).toBe(50);
      expect(after.firstOffset).toBe(50 - after.count + 1);
      const read = await bus.read({ from: 0, limit: 100 });
      expect(read.events[0]?.offset).toBe(after.firstOffset);
      expect(read.events.at(-1)?.offset).toBe(50);
      expect(read.gap).toEqual({ requested: 0, firstOffset: after.firstOffset });
    });

    it('refuses appends and reads once closed', async () => {
      const bus = await fixture().open();
      await bus.append(event(1));
      await bus.close();
      await expect(bus.append(event(2))).rejects.toMatchObject({ code: 'IOTDR_EVENTS_CLOSED' });
      await expect(bus.read({ from: 1, limit: 1 })).rejects.toMatchObject({ code: 'IOTDR_EVENTS_CLOSED' });
    });
  });
}

import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodePayload, type NewEvent, SqliteEventBus } from '../../src/events/index.js';
import { busSuite } from './bus-suite.js';
import { tempDir } from './support.js';

busSuite('sqlite', () => {
  const dirs: Array<() => Promise<void>> = [];
  const open: SqliteEventBus[] = [];
  let path = '';
  let now = 1_700_000_000_000;
  const clock = { now: () => now };
  let retention: { maxAgeSeconds?: number; maxBytes?: number } | undefined;
  const openAt = async (metrics?: Parameters<typeof SqliteEventBus.open>[0]['metrics']) => {
    const bus = await SqliteEventBus.open({
      path,
      region: 'us-east',
      clock,
      retention: { ...retention, intervalMs: 0 },
      ...(metrics === undefined ? {} : { metrics }),
    });
    open.push(bus);
    return bus;
  };
  return {
    async open(options = {}) {
      const { dir, remove } = await tempDir();
      dirs.push(remove);
      path = join(dir, 'events.db');
      retention = options.retention;
      return openAt(options.metrics);
    },
    // A SQLite log has one writer, the region process: another writer is that same bus.
    another: async (bus) => bus,
    async restart(bus) {
      await bus.close();
      return openAt();
    },
    now: () => now,
    async elapse(ms) {
      now += ms;
    },
    async cleanup() {
      for (const bus of open.splice(0)) await bus.close();
      for (const remove of dirs.splice(0)) await remove();
    },
  };
});

describe('SQLite event bus', () => {
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

  function event(n: number, extra: Partial<NewEvent> = {}): NewEvent {
    return {
      id: `evt-${n}`,
      time: 1_700_000_000_000 + n,
      source: { type: 'rule', rule: 'r1' },
      topic: `dev/t${n}/data`,
      payload: encodePayload(Buffer.from(JSON.stringify({ n }))),
      ...extra,
    };
  }

  it('applies its retention on its own timer', async () => {
    let tick: (() => void) | undefined;
    const bus = await SqliteEventBus.open({
      path: join(dir, 'events.db'),
      region: 'us-east',
      retention: { maxAgeSeconds: 0, maxBytes: 20_000, intervalMs: 1000 },
      every: (_ms, fn) => {
        tick = fn;
        return () => {
          tick = undefined;
        };
      },
    });
    open.push(bus);
    const big = Buffer.alloc(1000, 0x61);
    for (let n = 0; n < 50; n++) await bus.append(event(n, { payload: encodePayload(big) }));
    expect((await bus.stats()).count).toBe(50);
    tick?.();
    const after = await bus.stats();
    expect(after.bytes).toBeLessThanOrEqual(20_000);
    expect(after.firstOffset).toBeGreaterThan(1);
  });

  it('keeps a known id for good, even past any window', async () => {
    let now = 1_700_000_000_000;
    const bus = await SqliteEventBus.open({
      path: join(dir, 'events.db'),
      region: 'us-east',
      clock: { now: () => now },
    });
    open.push(bus);
    await bus.append(event(1, { id: 'm-1' }));
    now += 3_600_000;
    expect(await bus.append(event(2, { id: 'm-1', time: now }))).toEqual({ offset: 1, appended: false });
  });
});

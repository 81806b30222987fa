import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type EventBus, encodePayload, eventRoutes, SqliteEventBus } from '../../src/events/index.js';
import { eventually } from '../harness/cluster.js';
import { startApi, type TestApi } from './support.js';

let api: TestApi;
let bus: SqliteEventBus;
/** Highest offset the stream has read from the log so far. */
let readUpTo = 0;

const COUNT = 300;
const SIZE = 100_000;

beforeAll(async () => {
  api = await startApi(async (service, _metrics, dir) => {
    bus = await SqliteEventBus.open({
      path: join(dir, 'events.db'),
      region: 'us-east',
      synchronous: 'normal',
    });
    // The real bus, watched: what the stream reads from it.
    const watched: EventBus = Object.assign(Object.create(bus) as EventBus, {
      read: async (options: Parameters<EventBus['read']>[0]) => {
        const result = await bus.read(options);
        readUpTo = Math.max(readUpTo, result.next - 1);
        return result;
      },
    });
    return [eventRoutes(watched, service)];
  });
  const big = Buffer.alloc(SIZE, 0x61).toString('base64');
  await Promise.all(
    Array.from({ length: COUNT }, (_, i) =>
      bus.append({
        id: `e${i}`,
        time: i,
        source: { type: 'rule', rule: 'r' },
        topic: 't',
        payload: encodePayload(Buffer.from(JSON.stringify({ big }))),
      }),
    ),
  );
});

afterAll(async () => {
  await api?.close();
  await bus?.close();
});

it('stops reading the log for a consumer that does not read, and resumes when it does', async () => {
  const ws = new WebSocket(`${api.url.replace('http', 'ws')}/v1/events/stream?from=1`, {
    headers: { authorization: `Bearer ${api.tokens.reader}` },
  });
  const offsets: number[] = [];
  ws.on('message', (data) => {
    offsets.push((JSON.parse(data.toString()) as { offset: number }).offset);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.pause();
  try {
    // Let the server fill the socket and its own queue until it stops.
    let last = -1;
    await eventually(async () => {
      await new Promise((r) => setTimeout(r, 300));
      const stable = readUpTo === last && readUpTo > 0;
      last = readUpTo;
      return stable;
    }, 'the stream to stop reading');
    expect(readUpTo).toBeLessThan(COUNT);
    ws.resume();
    await eventually(async () => offsets.length === COUNT, 'every event delivered once resumed');
    expect(offsets).toEqual(Array.from({ length: COUNT }, (_, i) => i + 1));
  } finally {
    ws.close();
  }
});

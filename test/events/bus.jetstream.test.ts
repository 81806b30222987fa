import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import {
  connectNats,
  type EventBus,
  eventStreamName,
  JetStreamEventBus,
  type NewEvent,
} from '../../src/events/index.js';
import { natsSkipReason, type RunningNats, startNats } from '../harness/nats.js';
import { busSuite } from './bus-suite.js';

const skip = natsSkipReason();
let nats: RunningNats;
let streams = 0;

beforeAll(async () => {
  if (!skip) nats = await startNats();
}, 60_000);
afterAll(async () => {
  await nats?.stop();
});

describe.skipIf(skip)(`JetStream (${skip ?? 'nats-server'})`, () => {
  busSuite('jetstream', () => {
    const open: EventBus[] = [];
    let region = '';
    let options: Parameters<typeof JetStreamEventBus.open>[0] | undefined;
    const openBus = async () => {
      const bus = await JetStreamEventBus.open(options as Parameters<typeof JetStreamEventBus.open>[0]);
      open.push(bus);
      return bus;
    };
    return {
      async open(o = {}) {
        region = `r${++streams}`;
        options = {
          region,
          nats: nats.link(`iotdr:test:${region}`),
          ...(o.retention === undefined ? {} : { retention: o.retention }),
          ...(o.metrics === undefined ? {} : { metrics: o.metrics }),
        };
        return openBus();
      },
      async another() {
        const { metrics: _, ...rest } = options as Parameters<typeof JetStreamEventBus.open>[0];
        const bus = await JetStreamEventBus.open(rest);
        open.push(bus);
        return bus;
      },
      async restart(bus) {
        await bus.close();
        const [node] = nats.nodes;
        await node?.kill('SIGKILL');
        await node?.start();
        return openBus();
      },
      now: () => Date.now(),
      elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      async cleanup() {
        for (const bus of open.splice(0)) await bus.close();
        const nc = await connectNats(nats.link());
        try {
          const jsm = await jetstreamManager(nc);
          await jsm.streams.delete(eventStreamName(region)).catch(() => false);
        } finally {
          await nc.close();
        }
      },
    };
  });
});

describe.skipIf(skip)('JetStream bus without its NATS', () => {
  it('refuses appends with IOTDR_EVENTS_UNAVAILABLE while NATS is down, serves again once it is back, and closes either way', async () => {
    const bus = await JetStreamEventBus.open({
      region: `down-${++streams}`,
      nats: nats.link('iotdr:test:down'),
      appendTimeoutMs: 500,
    });
    const [node] = nats.nodes;
    try {
      expect((await bus.append(event('a'))).offset).toBe(1);
      await node?.kill('SIGKILL');
      await expect(bus.append(event('b'))).rejects.toMatchObject({ code: 'IOTDR_EVENTS_UNAVAILABLE' });
      await expect(bus.read({ from: 1, limit: 10 })).rejects.toMatchObject({
        code: 'IOTDR_EVENTS_UNAVAILABLE',
      });
      await node?.start();
      // The client reconnects by itself; the stream kept what was acknowledged.
      await waitUntil(async () => (await bus.append(event('c')).catch(() => undefined)) !== undefined, {
        timeoutMs: 20_000,
        intervalMs: 200,
        what: 'an append to succeed after the restart',
      });
      const ids = (await bus.read({ from: 1, limit: 10 })).events.map((e) => e.id);
      expect(ids[0]).toBe('a');
      expect(ids).toContain('c');
      await node?.kill('SIGKILL');
    } finally {
      // Closing with NATS away does not wait for it.
      await bus.close();
      if (!node?.running) await node?.start();
    }
  });
});

function event(id: string): NewEvent {
  return {
    id,
    time: Date.now(),
    source: { type: 'rule', rule: 'r1' },
    topic: 'dev/t/data',
    payload: { type: 'json', value: { id } },
  };
}

import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe } from 'vitest';
import { connectNats, type EventBus, eventStreamName, JetStreamEventBus } from '../../src/events/index.js';
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

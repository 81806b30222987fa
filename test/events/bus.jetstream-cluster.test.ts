/**
 * The bus on a three-server JetStream cluster with three replicas: the server leading the stream
 * is killed while two writers append, and nothing acknowledged is lost or stored twice.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { connectNats, eventStreamName, JetStreamEventBus, type NewEvent } from '../../src/events/index.js';
import { natsSkipReason, type RunningNats, startNats } from '../harness/nats.js';

const skip = natsSkipReason();
let nats: RunningNats;

beforeAll(async () => {
  if (!skip) nats = await startNats({ nodes: 3 });
}, 60_000);
afterAll(async () => {
  await nats?.stop();
});

function event(id: string): NewEvent {
  return {
    id,
    time: Date.now(),
    source: { type: 'rule', rule: 'telemetry' },
    topic: 'devices/t/telemetry',
    payload: { type: 'json', value: { id } },
  };
}

async function streamLeader(region: string): Promise<string | undefined> {
  const nc = await connectNats(nats.link('iotdr:test:info'));
  try {
    const info = await (await jetstreamManager(nc)).streams.info(eventStreamName(region));
    return info.cluster?.leader;
  } finally {
    await nc.close();
  }
}

describe.skipIf(skip)(`JetStream bus on a three-server cluster (${skip ?? 'nats-server'})`, () => {
  it('keeps every acknowledged append, once, when the stream leader is killed mid-stream', async () => {
    const region = 'replicas';
    const open = () => JetStreamEventBus.open({ region, nats: nats.link(), replicas: 3 });
    const writers = [await open(), await open()];
    try {
      const leader = await streamLeader(region);
      expect(leader).toBeDefined();
      const acked = new Map<string, number>();
      let failed = 0;
      let stop = false;
      // Each writer appends one event after another, retrying a failed one with the same id (as
      // a device re-sends a message that was not acknowledged).
      const run = async (w: number) => {
        for (let n = 0; !stop; n++) {
          const id = `w${w}-${n}`;
          for (;;) {
            try {
              const { offset } = await (writers[w] as JetStreamEventBus).append(event(id));
              acked.set(id, offset);
              break;
            } catch {
              failed++;
              if (stop) return;
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        }
      };
      const running = [run(0), run(1)];
      await waitUntil(() => acked.size >= 200, { timeoutMs: 20_000, what: '200 appends before the kill' });
      await nats.nodes.find((n) => n.name === leader)?.kill('SIGKILL');
      const atKill = acked.size;
      await waitUntil(() => acked.size >= atKill + 200, {
        timeoutMs: 30_000,
        what: '200 more appends once another server leads the stream',
      });
      stop = true;
      await Promise.all(running);
      // The cluster may still be electing its meta leader: asked until it answers.
      let after: string | undefined;
      await waitUntil(
        async () => {
          after = await streamLeader(region).catch(() => undefined);
          return after !== undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'the stream to name its leader after the kill' },
      );
      expect(after).not.toBe(leader);

      // Every acknowledged event at the offset it was acknowledged with; offsets gap-free; no id twice.
      const events = [];
      for (let from = 1; ; ) {
        const page = await (writers[0] as JetStreamEventBus).read({ from, limit: 1000 });
        if (page.events.length === 0) break;
        events.push(...page.events);
        from = page.next;
      }
      expect(events.map((e) => e.offset)).toEqual(events.map((_, i) => i + 1));
      const byId = new Map(events.map((e) => [e.id, e.offset]));
      expect(byId.size).toBe(events.length);
      for (const [id, offset] of acked) expect(byId.get(id), id).toBe(offset);
      // The killed server comes back and catches up.
      await nats.nodes.find((n) => n.name === leader)?.start();
      if (process.env.SHOW) console.log({ acked: acked.size, failed, stored: events.length });
    } finally {
      for (const w of writers) await w.close();
    }
  }, 90_000);
});

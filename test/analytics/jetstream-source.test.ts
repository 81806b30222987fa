/**
 * RegionIngestor reading a region's JetStream stream with its durable consumer
 * (JetStreamBusSource), against a throwaway NATS and a real SQLite analytics store; events are
 * appended by a JetStreamEventBus as a region would. The store's cursor is the truth: restarts,
 * a crash between commit and acknowledgement, retention gaps and a NATS server killed with
 * SIGKILL neither count an event twice nor skip one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  analyticsMetrics,
  type BusSource,
  DEFAULT_ANALYTICS_DURABLE,
  type IngestState,
  JetStreamBusSource,
  RegionIngestor,
  SqliteAnalyticsStore,
} from '../../src/analytics/index.js';
import {
  connectNats,
  encodePayload,
  eventStreamName,
  JetStreamEventBus,
  type NewEvent,
} from '../../src/events/index.js';
import { eventually } from '../harness/cluster.js';
import { natsSkipReason, type RunningNats, startNats } from '../harness/nats.js';

const skip = natsSkipReason();
let nats: RunningNats;
let admin: NatsConnection;
let jsm: JetStreamManager;
let regions = 0;

beforeAll(async () => {
  if (skip) return;
  nats = await startNats();
  admin = await connectNats(nats.link('iotdr:test:admin'));
  jsm = await jetstreamManager(admin);
}, 60_000);
afterAll(async () => {
  await admin?.close();
  await nats?.stop();
});

function event(n: number, pad = 0): NewEvent {
  return {
    id: `evt-${n}`,
    time: Date.now(),
    source: { type: 'rule', rule: 'telemetry' },
    topic: 'devices/d1/telemetry',
    thingName: 'd1',
    payload: encodePayload(Buffer.from(JSON.stringify({ seq: n, pad: 'x'.repeat(pad) }))),
  };
}

function probe(n: number): NewEvent {
  return {
    id: `probe-${n}`,
    time: Date.now(),
    source: { type: 'health' },
    topic: '$iotdr/health/probe',
    payload: encodePayload(Buffer.from(JSON.stringify({ probe: n }))),
  };
}

/**
 * A source that records the offsets of every committed page, acknowledges them or not, and with
 * `hold` holds every read after that many committed pages (until the ingestor stops or closes).
 */
function recorded(
  source: BusSource,
  options: { offsets?: number[]; ack?: boolean; hold?: number } = {},
): BusSource & { pages: number } {
  return {
    pages: 0,
    batchSize: source.batchSize,
    async read(from, signal) {
      if (options.hold !== undefined && this.pages >= options.hold) {
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        throw signal.reason;
      }
      return source.read(from, signal);
    },
    async committed(page) {
      this.pages++;
      options.offsets?.push(...page.events.map((e) => e.offset));
      if (options.ack !== false) await source.committed?.(page);
    },
    close: () => source.close(),
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe.skipIf(skip)(`JetStreamBusSource (${skip ?? 'nats-server'})`, () => {
  let dir: string;
  let store: SqliteAnalyticsStore;
  let region: string;
  const closers: Array<() => Promise<void>> = [];

  beforeEach(async () => {
    region = `r${++regions}`;
    dir = await mkdtemp(join(tmpdir(), 'iotdr-analytics-js-'));
    store = await SqliteAnalyticsStore.open({ path: join(dir, 'analytics.db') });
  });

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await store.close();
    await jsm.streams.delete(eventStreamName(region)).catch(() => false);
    await rm(dir, { recursive: true, force: true });
  });

  async function openBus(retention?: { maxBytes: number }): Promise<JetStreamEventBus> {
    const bus = await JetStreamEventBus.open({
      region,
      nats: nats.link(`iotdr:test:${region}`),
      appendTimeoutMs: 1000,
      ...(retention === undefined ? {} : { retention }),
    });
    closers.push(() => bus.close());
    return bus;
  }

  function source(): JetStreamBusSource {
    return new JetStreamBusSource({
      region,
      nats: nats.link('iotdr:analytics'),
      batchSize: 40,
      waitMs: 1000,
      requestTimeoutMs: 2000,
    });
  }

  function ingestor(from: BusSource, metrics?: Registry): RegionIngestor {
    const ingest: RegionIngestor = new RegionIngestor({
      region,
      source: from,
      store,
      retryBaseMs: 50,
      retryMaxMs: 250,
      ...(metrics === undefined ? {} : { metrics: analyticsMetrics(metrics, () => [ingest.status()]) }),
    });
    // Closing twice is harmless: a test closes some itself.
    closers.push(() => ingest.close());
    return ingest;
  }

  const consumer = () => jsm.consumers.info(eventStreamName(region), DEFAULT_ANALYTICS_DURABLE);

  it('ingests every event in stream order, and a restarted ingestor reads on without counting any twice', async () => {
    const bus = await openBus();
    for (let n = 1; n <= 150; n++) await bus.append(n === 75 ? probe(n) : event(n));
    const offsets: number[] = [];
    // Three pages are committed, then the first ingestor is closed with more pulled ahead.
    const held = recorded(source(), { offsets, hold: 3 });
    const first = ingestor(held);
    await first.start();
    await eventually(async () => held.pages === 3, 'three pages');
    expect(first.status().nextOffset).toBeLessThan(150);
    await first.close();
    for (let n = 151; n <= 200; n++) await bus.append(event(n));
    const second = ingestor(recorded(source(), { offsets }));
    await second.start();
    await eventually(async () => second.status().nextOffset === 201, 'every event');
    expect(offsets).toEqual(range(1, 200));
    // The health probe passes through (its offset is read) and is not counted; seq 75 is its offset.
    expect(second.status()).toMatchObject({ read: 199, duplicates: 0, lastOffset: 200, lagEvents: 0 });
    expect(await store.totals()).toMatchObject({ messages: 199, duplicates: 0, missing: 1 });
    expect(await store.device('d1')).toMatchObject({ messages: 199, firstSeq: 1, lastSeq: 200, missing: 1 });
  });

  it('counts nothing twice after a crash between the commit and the acknowledgement', async () => {
    const bus = await openBus();
    for (let n = 1; n <= 100; n++) await bus.append(event(n));
    const crashed = ingestor(recorded(source(), { ack: false }));
    await crashed.start();
    await eventually(async () => crashed.status().nextOffset === 101, 'every event committed');
    await crashed.close();
    const before = await consumer();
    expect(before.ack_floor.stream_seq).toBe(0);
    expect(before.delivered.stream_seq).toBeGreaterThanOrEqual(100);

    const offsets: number[] = [];
    const again = ingestor(recorded(source(), { offsets }));
    await again.start();
    for (let n = 101; n <= 150; n++) await bus.append(event(n));
    await eventually(async () => again.status().nextOffset === 151, 'the new events');
    expect(offsets).toEqual(range(101, 150));
    expect(again.status()).toMatchObject({ read: 150, duplicates: 0 });
    expect(await store.device('d1')).toMatchObject({ messages: 150, missing: 0 });
    // The consumer disagreed with the cursor (nothing acknowledged): made again at it.
    await eventually(async () => (await consumer()).ack_floor.stream_seq === 150, 'the acknowledgement');
    expect((await consumer()).created).not.toBe(before.created);
  });

  it('keeps the durable consumer across a restart when its ack floor agrees with the cursor', async () => {
    const bus = await openBus();
    for (let n = 1; n <= 30; n++) await bus.append(event(n));
    const first = ingestor(source());
    await first.start();
    await eventually(async () => (await consumer()).ack_floor.stream_seq === 30, 'all acknowledged');
    const before = await consumer();
    expect(before.delivered.stream_seq).toBe(30);
    await first.close();

    const second = ingestor(source());
    await second.start();
    await eventually(async () => second.status().state.type === 'ingesting', 'caught up');
    for (let n = 31; n <= 40; n++) await bus.append(event(n));
    await eventually(async () => (await consumer()).ack_floor.stream_seq === 40, 'the new events');
    expect((await consumer()).created).toBe(before.created);
    expect(second.status()).toMatchObject({ nextOffset: 41, read: 40, duplicates: 0 });
  });

  it('reports the events retention removed while stopped, and reads on from the oldest kept', async () => {
    // About 700 bytes an event: the stream keeps the last 25 or so.
    const bus = await openBus({ maxBytes: 20_000 });
    for (let n = 1; n <= 20; n++) await bus.append(event(n, 500));
    const metrics = new Registry();
    const ingest = ingestor(source(), metrics);
    await ingest.start();
    await eventually(async () => ingest.status().nextOffset === 21, 'the first events');
    ingest.stop('drill');
    for (let n = 21; n <= 220; n++) await bus.append(event(n, 500));
    const kept = (await jsm.streams.info(eventStreamName(region))).state.first_seq;
    expect(kept).toBeGreaterThan(21);
    ingest.resume();
    await eventually(async () => ingest.status().nextOffset === 221, 'read past the gap');
    const text = await metrics.metrics();
    expect(text).toContain(`iotdr_analytics_bus_gaps_total{region="${region}"} 1`);
    expect(text).toContain(`iotdr_analytics_bus_lost_events_total{region="${region}"} ${kept - 21}`);
    expect(ingest.status()).toMatchObject({ read: 20 + 220 - kept + 1, duplicates: 0, lagEvents: 0 });
    expect(await store.device('d1')).toMatchObject({ firstSeq: 1, lastSeq: 220, missing: kept - 21 });
  });

  it('is unreachable while the stream is missing, naming it, and reads once the region made it', async () => {
    const ingest = ingestor(source());
    await ingest.start();
    await eventually(async () => ingest.status().state.type === 'unreachable', 'unreachable');
    expect((ingest.status().state as { error: string }).error).toContain(
      `no stream ${eventStreamName(region)}`,
    );
    const bus = await openBus();
    for (let n = 1; n <= 5; n++) await bus.append(event(n));
    await eventually(async () => ingest.status().nextOffset === 6, 'the events');
    expect(ingest.status()).toMatchObject({ state: { type: 'ingesting' }, read: 5 });
  });

  it('rides out NATS killed with SIGKILL and restarted: unreachable while down, then every event once', async () => {
    const bus = await openBus();
    const ingest = ingestor(source());
    await ingest.start();
    const total = 300;
    let acknowledged = 0;
    const appending = (async () => {
      for (let n = 1; n <= total; n++) {
        // Retried with the same id until acknowledged: the stream stores it once.
        for (;;) {
          try {
            await bus.append(event(n));
            break;
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
        acknowledged = n;
      }
    })();
    await eventually(async () => acknowledged >= 50 && ingest.status().read > 0, 'ingesting');
    const [node] = nats.nodes;
    await node?.kill('SIGKILL');
    const states: IngestState[] = [];
    await eventually(async () => {
      states.push(ingest.status().state);
      return ingest.status().state.type === 'unreachable';
    }, 'unreachable while NATS is down');
    expect((ingest.status().state as { error: string }).error).toContain('NATS');
    await node?.start();
    await appending;
    await eventually(async () => {
      const info = await jsm.streams.info(eventStreamName(region));
      return ingest.status().nextOffset === info.state.last_seq + 1;
    }, 'everything ingested after the restart');
    const stored = (await jsm.streams.info(eventStreamName(region))).state.messages;
    // Every message of the stream counted once; every acknowledged event among them.
    expect(ingest.status()).toMatchObject({ read: stored, state: { type: 'ingesting' } });
    expect(await store.device('d1')).toMatchObject({
      messages: total,
      firstSeq: 1,
      lastSeq: total,
      missing: 0,
    });
  }, 60_000);
});

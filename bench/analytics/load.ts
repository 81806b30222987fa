/**
 * What the analytics benchmark puts on a region's bus: a backlog appended straight to the bus
 * before analytics starts, and live telemetry published over MQTT at a fixed rate; both carry the
 * same events the region's telemetry rule writes.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { EventBus, NewEvent } from '../../src/events/index.js';
import type { OnboardedDevice } from '../commands/load.js';
import { HOST, ZONE } from '../commands/region.js';
import { check } from '../registry/common.js';

/** The default rule's topic (DEFAULT_RULES in src/rules): device telemetry onto the bus. */
export const telemetryTopic = (thing: string): string => `devices/${thing}/telemetry`;

/**
 * The JSON a bench device sends as its `seq`-th message, about 100 bytes: its message id (which
 * the rule makes the event's id) and a few readings.
 */
export function telemetryPayload(thing: string, seq: number): Record<string, unknown> {
  return {
    messageId: `${thing}-${seq}`,
    seq,
    temp: 20 + (seq % 10) / 2,
    humidity: 40 + (seq % 20),
    battery: 100 - (seq % 50),
    rssi: -60 - (seq % 30),
    fw: '1.4.2',
  };
}

/**
 * The event the region's telemetry rule appends for that message: the device's message id as the
 * event id, source rule `telemetry`, the payload as JSON.
 */
export function telemetryEvent(thing: string, seq: number, time: number): NewEvent {
  return {
    id: `${thing}-${seq}`,
    time,
    source: { type: 'rule', rule: 'telemetry' },
    topic: telemetryTopic(thing),
    thingName: thing,
    clientId: thing,
    payload: { type: 'json', value: telemetryPayload(thing, seq) },
  };
}

/** Appends in flight at once: a SQLite bus commits what arrives in one tick as one transaction. */
const APPEND_BATCH = 1000;

/**
 * Appends `n` telemetry events to `bus`, which must be empty, spread round robin over `devices`,
 * each device numbering its messages 1, 2, 3…: what the region's telemetry rule would have put
 * there. The caller opens and closes the bus (a SQLite one before the region starts, so it keeps
 * one writer at a time).
 */
export async function appendBacklog(bus: EventBus, devices: string[], n: number): Promise<void> {
  for (let base = 0; base < n; base += APPEND_BATCH) {
    const batch: Array<Promise<unknown>> = [];
    for (let i = base; i < Math.min(n, base + APPEND_BATCH); i++) {
      const thing = devices[i % devices.length] ?? '';
      batch.push(bus.append(telemetryEvent(thing, Math.floor(i / devices.length) + 1, Date.now())));
    }
    await Promise.all(batch);
  }
  const last = await bus.lastOffset();
  check(last === n, `the bus holds ${last} events, ${n} appended`);
}

export function connectDevice(port: number, caPem: string, device: OnboardedDevice): Promise<MqttClient> {
  return mqtt.connectAsync({
    protocol: 'mqtts',
    host: HOST,
    port,
    servername: `mqtt.${ZONE}`,
    ca: caPem,
    cert: device.certificatePem,
    key: device.privateKeyPem,
    rejectUnauthorized: true,
    clientId: device.thingName,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    protocolVersion: 4,
  });
}

export interface Published {
  /** Publish time of the k-th message (ms, performance.now()), in publish order. */
  sentAt: Float64Array;
  /** Messages published; all acknowledged (PUBACK) once `paced` resolved. */
  count: number;
}

/** How often the pacer wakes; each wake publishes what the rate owes by then. */
const PACE_TICK_MS = 5;

/**
 * Publishes `rate` messages per second for `seconds`, QoS 1, round robin over the clients, each
 * device numbering its messages 1, 2, 3…. Resolves when every message got its PUBACK (a message
 * the region acknowledged is on its bus).
 */
export async function paced(
  clients: Array<{ client: MqttClient; thing: string }>,
  rate: number,
  seconds: number,
): Promise<Published> {
  const total = Math.round(rate * seconds);
  const sentAt = new Float64Array(total);
  const seqs = clients.map(() => 0);
  const acks: Array<Promise<void>> = [];
  let sent = 0;
  let failure: { error: unknown } | undefined;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const owed = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
      while (sent < owed) {
        const d = sent % clients.length;
        const c = clients[d];
        if (c === undefined) break;
        const seq = (seqs[d] ?? 0) + 1;
        seqs[d] = seq;
        sentAt[sent] = performance.now();
        // Handled at once (a disconnect mid-run must not be an unhandled rejection), checked below.
        acks.push(
          c.client
            .publishAsync(telemetryTopic(c.thing), JSON.stringify(telemetryPayload(c.thing, seq)), { qos: 1 })
            .then(
              () => undefined,
              (error: unknown) => {
                failure ??= { error };
              },
            ),
        );
        sent++;
      }
      if (sent >= total || failure !== undefined) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, PACE_TICK_MS);
  });
  await Promise.all(acks);
  if (failure !== undefined) throw failure.error;
  return { sentAt, count: sent };
}

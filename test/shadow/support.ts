import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ShadowInboundMessage, ShadowPublish } from '../../src/broker/shadow/index.js';
import type { Clock } from '../../src/common/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import type { RegistryService } from '../../src/registry/index.js';
import { PostgresStore, type RegistryStore, SqliteStore } from '../../src/registry/store/index.js';
import { eventually } from '../harness/cluster.js';
import { postgresSkipReason, startPostgres } from '../harness/postgres.js';

/** One message the engine published, payload parsed. */
export interface Published {
  topic: string;
  payload: any;
  qos: number | undefined;
  retain: boolean | undefined;
}

/**
 * A publish function that keeps what it is given: the receiving end of the engine, as a broker
 * delivering to a subscriber of every topic would see it.
 */
export function recorder() {
  const messages: Published[] = [];
  const publish: ShadowPublish = async (topic, payload, options) => {
    messages.push({
      topic,
      payload: JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8')),
      qos: options?.qos,
      retain: options?.retain,
    });
  };
  return {
    messages,
    publish,
    /** Messages on topics ending with `suffix` (e.g. 'update/delta'). */
    on(suffix: string): Published[] {
      return messages.filter((m) => m.topic.endsWith(`/${suffix}`));
    },
    /** Returns and forgets what was published so far. */
    take(): Published[] {
      return messages.splice(0, messages.length);
    },
    /** Waits until a message on `suffix` was published (commit announcements come a turn later). */
    async waitFor(suffix: string, count = 1): Promise<Published[]> {
      await eventually(async () => this.on(suffix).length >= count, `${count} message(s) on ${suffix}`, 5000);
      return this.on(suffix);
    },
  };
}

export function request(topic: string, payload: unknown = ''): ShadowInboundMessage {
  const body = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return { topic, payload: body, qos: 1, retain: false, clientId: 'device-1', receivedAt: Date.now() };
}

export const topic = (thing: string, suffix: string) => `$iotdr/things/${thing}/shadow/${suffix}`;

/** Lets pending setImmediate announcements run and their publications finish. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

export interface ServiceFixture {
  service: RegistryService;
  store: RegistryStore;
  /** Seconds the test clock shows; set `now` to move it. */
  clock: Clock & { now(): number; set(ms: number): void };
  close(): Promise<void>;
}

export type StoreEngine = 'sqlite' | 'postgres';

/** A registry service on a real store of that engine, with a clock the test drives. */
export async function openService(engine: StoreEngine, region = 'us-east'): Promise<ServiceFixture> {
  let ms = Date.parse('2026-03-01T12:00:00Z');
  const clock = {
    now: () => ms,
    set: (to: number) => {
      ms = to;
    },
  };
  let store: RegistryStore;
  let cleanup: () => Promise<void>;
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'iotdr-shadow-'));
    store = new SqliteStore({ path: join(dir, 'registry.db') });
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  } else {
    const started = await startPostgres();
    if ('skipped' in started) throw new Error(started.skipped);
    store = new PostgresStore({ connectionString: started.url, schema: 'shadow_suite' });
    cleanup = () => started.stop();
  }
  await store.init();
  const service = regionRegistryService({ store, region, clock });
  await service.init();
  return {
    service,
    store,
    clock,
    async close() {
      await store.close();
      await cleanup();
    },
  };
}

/** The engines to run a suite on: SQLite always, PostgreSQL when its binaries are here. */
export function storeEngines(): StoreEngine[] {
  const skip = postgresSkipReason();
  if (skip !== undefined) console.warn(`skipping the PostgreSQL shadow tests: ${skip}`);
  return skip === undefined ? ['sqlite', 'postgres'] : ['sqlite'];
}

/**
 * Aedes' scale-out path on Redis: one emitter (`mqemitter-redis`, Redis pub/sub) carries every
 * publish to the node holding its subscriber, and one persistence (`aedes-persistence-redis`)
 * keeps retained messages, persistent sessions and their queued QoS 1 messages where any node
 * finds them. Every broker node of a region (workers, hosts) shares one Redis; regions never
 * share one (they share nothing but replication).
 */
import { createRequire } from 'node:module';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import type { Logger } from '../common/index.js';
import type { EngineBackend } from './engine.js';
import { invalidBrokerOptions, redisUnreachable } from './errors.js';

const require = createRequire(import.meta.url);
// CommonJS packages without ESM entry points.
const { Redis } = require('ioredis') as typeof import('ioredis');
const mqemitterRedis = require('mqemitter-redis') as (options: Record<string, unknown>) => RedisEmitter;
const persistenceRedis = require('aedes-persistence-redis') as (options: Record<string, unknown>) => unknown;

/** How long a broker node waits for Redis at start before it gives up, in ms. */
export const REDIS_CONNECT_TIMEOUT_MS = 5_000;

/** The part of an MQEmitter the cluster link uses (mqemitter's API). */
export interface Emitter {
  on(
    topic: string,
    listener: (message: EmittedMessage, done: () => void) => void,
    ready?: () => void,
  ): unknown;
  removeListener(topic: string, listener: (message: EmittedMessage, done: () => void) => void): unknown;
  emit(message: EmittedMessage, done?: (error?: Error) => void): void;
}

/** What travels on the emitter: a PUBLISH packet's fields (devices' messages and the link's alike). */
export interface EmittedMessage {
  topic: string;
  payload?: unknown;
  [field: string]: unknown;
}

interface RedisEmitter extends Emitter {
  state: { on(event: 'error', listener: (error: Error) => void): unknown };
  close(done: () => void): void;
}

/** The shared emitter and persistence of one broker node, and how to let go of them. */
export interface ClusterBackend extends EngineBackend {
  mq: Emitter;
  close(): Promise<void>;
}

/** Redis URLs this accepts: `redis://[:password@]host[:port][/db]`, or `rediss://` for TLS. */
export function checkRedisUrl(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'expected a URL such as redis://127.0.0.1:6379/0';
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    return `expected redis:// or rediss://, got ${parsed.protocol}//`;
  if (parsed.hostname === '') return 'expected a host, as in redis://127.0.0.1:6379';
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) return `expected a database number after the host, got /${db}`;
  return undefined;
}

/**
 * Connects one broker node to the region's Redis: three connections (publish, subscribe,
 * persistence). Rejects with IOTDR_BROKER_REDIS_UNREACHABLE when Redis does not answer a PING in
 * time, so a misconfigured node fails at start instead of refusing every device later.
 */
export async function redisBackend(options: {
  url: string;
  /** Redis AUTH password, kept out of the URL. */
  password?: string;
  id: string;
  logger: Logger;
}): Promise<ClusterBackend> {
  const problem = checkRedisUrl(options.url);
  if (problem !== undefined) throw invalidBrokerOptions(`broker.cluster.redis: ${problem}`);
  const redisOptions: RedisOptions = {
    // Commands wait while Redis is away (a restart), up to the node's own timeouts.
    maxRetriesPerRequest: null,
    connectionName: `iotdr-broker-${options.id}`,
    ...(options.password === undefined ? {} : { password: options.password }),
  };
  const connect = (): RedisClient => {
    const client = new Redis(options.url, redisOptions);
    client.on('error', (error: Error) =>
      options.logger.warn({ err: error.message }, 'redis connection error'),
    );
    return client;
  };
  const clients = [connect(), connect(), connect()] as const;
  const [pubConn, subConn, db] = clients;
  try {
    await Promise.all(clients.map((c) => pingWithin(c, REDIS_CONNECT_TIMEOUT_MS)));
  } catch (error) {
    for (const c of clients) c.disconnect();
    throw redisUnreachable(redacted(options.url), error);
  }
  const mq = quietOnClose(mqemitterRedis({ pubConn, subConn }));
  mq.state.on('error', (error) => options.logger.warn({ err: error.message }, 'redis emitter error'));
  const persistence = persistenceRedis({ conn: observed(db) });
  let closing: Promise<void> | undefined;
  return {
    id: options.id,
    mq,
    persistence,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => mq.close(resolve));
        await db.quit().catch(() => db.disconnect());
      })();
      return closing;
    },
  };
}

/**
 * The emitter, dropping what is emitted once it closes. Aedes closes its emitter when its clients
 * are closed, but their unsubscriptions still publish `$SYS` notices a moment later: on a closed
 * Redis connection each would fail, and Aedes' callback throws from inside the emitter's promise
 * (an unhandled rejection that ends the process).
 */
function quietOnClose(mq: RedisEmitter): RedisEmitter {
  let closing = false;
  return new Proxy(mq, {
    get(target, property, receiver) {
      if (property === 'emit')
        return (message: EmittedMessage, done?: (error?: Error) => void) => {
          if (closing) done?.();
          else target.emit(message, done);
        };
      if (property === 'close')
        return (done: () => void) => {
          closing = true;
          target.close(done);
        };
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * The connection as the persistence sees it: every command's promise gets a handler. The
 * persistence sends some commands without awaiting them (a will's list entry when a client
 * closes); one that meets a connection closing under it must not end the process as an unhandled
 * rejection. Callers that await a command still get its error.
 */
function observed(client: RedisClient): RedisClient {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) result.catch(() => undefined);
        return result;
      };
    },
  });
}

function pingWithin(client: RedisClient, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to PING within ${ms} ms`)), ms);
    client.ping().then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (error: Error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** The URL without its password, for logs and errors. */
export function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

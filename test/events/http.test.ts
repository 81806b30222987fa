import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Timers } from '../../src/common/index.js';
import {
  type BusEvent,
  encodePayload,
  eventRoutes,
  type NewEvent,
  readEvents,
  SqliteEventBus,
} from '../../src/events/index.js';
import { startApi, type TestApi } from './support.js';

let api: TestApi;
let bus: SqliteEventBus;

function event(n: number): NewEvent {
  return {
    id: `m-${n}`,
    time: 1_700_000_000_000 + n,
    source: { type: 'rule', rule: 'telemetry' },
    topic: `dev/t${n}/data`,
    payload: encodePayload(Buffer.from(JSON.stringify({ n }))),
  };
}

beforeAll(async () => {
  api = await startApi(async (service, metrics, dir) => {
    bus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'us-east', metrics });
    return [eventRoutes(bus, service)];
  });
  for (let n = 1; n <= 5; n++) await bus.append(event(n));
});

afterAll(async () => {
  await api?.close();
  await bus?.close();
});

describe('GET /v1/events', () => {
  it('reads from an offset, and pages on from next', async () => {
    const res = await api.call('GET', '/v1/events?from=2&limit=2', undefined, api.tokens.reader);
    expect(res.status).toBe(200);
    expect(res.body.events.map((e: BusEvent) => e.offset)).toEqual([2, 3]);
    expect(res.body.events[0]).toMatchObject({
      id: 'm-2',
      region: 'us-east',
      payload: { type: 'json', value: { n: 2 } },
    });
    expect(res.body).toMatchObject({ next: 4, firstOffset: 1, lastOffset: 5 });
  });

  it('long-polls: an empty answer waits for the next append', async () => {
    const last = await bus.lastOffset();
    const pending = api.call('GET', `/v1/events?from=${last + 1}&wait=20000`, undefined, api.tokens.reader);
    await new Promise((r) => setTimeout(r, 100));
    await bus.append(event(100));
    const res = await pending;
    expect(res.body.events.map((e: BusEvent) => e.id)).toEqual(['m-100']);
  });

  it('refuses bad parameters with problem+json and needs the reader role', async () => {
    for (const q of ['from=-1', 'from=abc', 'limit=0', 'limit=5000', 'wait=99999', 'other=1', 'from=']) {
      const res = await api.call('GET', `/v1/events?${q}`, undefined, api.tokens.reader);
      expect(res.status, q).toBe(400);
      expect(res.type).toMatch(/problem\+json/);
      expect(res.body.code).toBe('IOTDR_VALIDATION_FAILED');
    }
    expect((await api.call('GET', '/v1/events', undefined, null)).body.code).toBe('IOTDR_AUTH_REQUIRED');
    expect((await api.call('GET', '/v1/events', undefined, api.tokens.replicator)).status).toBe(403);
    expect((await api.call('GET', '/v1/events', undefined, api.tokens.operator)).status).toBe(200);
  });

  it('is followed by the readEvents helper', async () => {
    const seen: string[] = [];
    for await (const e of readEvents(api.url, api.tokens.reader, {
      from: 4,
      untilCaughtUp: true,
      limit: 1,
    })) {
      seen.push(e.id);
    }
    expect(seen).toEqual(['m-4', 'm-5', 'm-100']);
    await expect(async () => {
      for await (const _ of readEvents(api.url, 'iotdr_bad', { untilCaughtUp: true })) break;
    }).rejects.toMatchObject({ status: 401 });
  });
});

interface Stream {
  ws: WebSocket;
  frames: BusEvent[];
  /** Resolves once `count` frames have arrived in all. */
  received(count: number): Promise<BusEvent[]>;
}

/** Opens the stream; resolves once open, or rejects with the HTTP status and problem of a refusal. */
function openStream(query: string, token?: string, on: TestApi = api): Promise<Stream> {
  const ws = new WebSocket(`${on.url.replace('http', 'ws')}/v1/events/stream${query}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  // Listening from the start: frames may arrive in the same chunk as the handshake.
  const frames: BusEvent[] = [];
  let wake = () => {};
  ws.on('message', (data, isBinary) => {
    if (!isBinary) frames.push(JSON.parse(data.toString()) as BusEvent);
    wake();
  });
  const stream: Stream = {
    ws,
    frames,
    received: (count) =>
      new Promise((resolve) => {
        wake = () => {
          if (frames.length >= count) resolve(frames.slice(0, count));
        };
        wake();
      }),
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(stream));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => {
        reject(
          Object.assign(new Error(`HTTP ${res.statusCode}`), {
            status: res.statusCode,
            body: JSON.parse(body),
          }),
        );
        ws.terminate();
      });
    });
    ws.once('error', reject);
  });
}

describe('WebSocket /v1/events/stream', () => {
  it('streams from an offset, then each new event as it is appended', async () => {
    const stream = await openStream('?from=3', api.tokens.reader);
    try {
      const first = await stream.received(4);
      expect(first.map((e) => e.id)).toEqual(['m-3', 'm-4', 'm-5', 'm-100']);
      await bus.append(event(200));
      const all = await stream.received(5);
      expect(all[4]).toMatchObject({ id: 'm-200', offset: 7, topic: 'dev/t200/data' });
    } finally {
      stream.ws.close();
    }
  });

  it('refuses the upgrade without a valid token, with the wrong role, or with a bad offset', async () => {
    await expect(openStream('?from=1')).rejects.toMatchObject({
      status: 401,
      body: { code: 'IOTDR_AUTH_REQUIRED' },
    });
    await expect(openStream('?from=1', 'iotdr_nope')).rejects.toMatchObject({
      status: 401,
      body: { code: 'IOTDR_AUTH_INVALID_TOKEN' },
    });
    await expect(openStream('?from=1', api.tokens.replicator)).rejects.toMatchObject({ status: 403 });
    await expect(openStream('?from=x', api.tokens.reader)).rejects.toMatchObject({
      status: 400,
      body: { code: 'IOTDR_VALIDATION_FAILED' },
    });
  });

  it('refuses a scoped console token, on the upgrade as on the long poll', async () => {
    const scoped = (await api.service.createToken('south-console', 'operator', { operations: ['read'] }))
      .token;
    await expect(openStream('?from=1', scoped)).rejects.toMatchObject({
      status: 403,
      body: { code: 'IOTDR_AUTH_SCOPED_TOKEN' },
    });
    const poll = await api.call('GET', '/v1/events?from=1', undefined, scoped);
    expect(poll.status).toBe(403);
    expect(poll.body.code).toBe('IOTDR_AUTH_SCOPED_TOKEN');
  });

  it('answers a plain GET with 426', async () => {
    const res = await api.call('GET', '/v1/events/stream', undefined, api.tokens.reader);
    expect(res.status).toBe(426);
    expect(res.body.code).toBe('IOTDR_EVENTS_UPGRADE_REQUIRED');
  });
});

/** Timers the test fires by hand: the periodic check runs only when told. */
class ManualTimers implements Timers {
  readonly pending = new Map<number, () => void>();
  #next = 0;
  setTimeout(callback: () => void): unknown {
    const id = ++this.#next;
    this.pending.set(id, callback);
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const callback of due) callback();
  }
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}

describe('a stream whose token is revoked', () => {
  let guarded: TestApi;
  let guardedBus: SqliteEventBus;
  const timers = new ManualTimers();
  /** Tokens another process deleted: this process sees no commit for them. */
  const deletedElsewhere = new Set<string>();

  beforeAll(async () => {
    guarded = await startApi(async (service, metrics, dir) => {
      guardedBus = await SqliteEventBus.open({ path: join(dir, 'events.db'), region: 'us-east', metrics });
      // Only the stream routes see this verifier; one method of it follows the registry's commits.
      const tokens = {
        verifyToken: (token: string) =>
          deletedElsewhere.has(token) ? undefined : service.verifyToken(token),
        onCommit: service.onCommit.bind(service),
      };
      return [eventRoutes(guardedBus, tokens, { timers })];
    });
    await guardedBus.append(event(1));
  });

  afterAll(async () => {
    await guarded?.close();
    await guardedBus?.close();
  });

  it('ends with 1008 as soon as the registry commits its deletion, without waiting for the periodic check', async () => {
    const made = await guarded.service.createToken('short-lived', 'reader');
    const other = await guarded.service.createToken('stays', 'reader');
    const stream = await openStream('?from=1', made.token, guarded);
    const kept = await openStream('?from=1', other.token, guarded);
    const closed = closeOf(stream.ws);
    await stream.received(1);
    await guarded.service.deleteToken(made.info.tokenId);
    expect(await closed).toEqual({ code: 1008, reason: 'token revoked' });
    // The periodic check never ran; the other token's stream is still open and following.
    expect(kept.ws.readyState).toBe(WebSocket.OPEN);
    await guardedBus.append(event(2));
    await kept.received(2);
    kept.ws.close();
    await expect(openStream('?from=1', made.token, guarded)).rejects.toMatchObject({ status: 401 });
  });

  it('ends with 1008 at the next periodic check when the deletion was made by another process', async () => {
    const made = await guarded.service.createToken('elsewhere', 'reader');
    const stream = await openStream('?from=1', made.token, guarded);
    await stream.received(1);
    const closed = closeOf(stream.ws);
    deletedElsewhere.add(made.token);
    expect(stream.ws.readyState).toBe(WebSocket.OPEN);
    timers.fireAll();
    expect(await closed).toEqual({ code: 1008, reason: 'token revoked' });
  });
});

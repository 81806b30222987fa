import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { type WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import type { ErrorCode, Timers } from '../common/index.js';
import { authorizeBearer, bearerToken, problem, problemAnswers, READ } from '../http/index.js';
import { upgradeRequired } from './errors.js';
import { MAX_WAIT_MS } from './limits.js';
import { StreamGuard, type StreamTokens } from './revocation.js';
import type { EventBus } from './types.js';

export const EVENTS_PATH = '/v1/events';
export const STREAM_PATH = '/v1/events/stream';
/** Default and largest page of a long poll. */
export const DEFAULT_READ_LIMIT = 100;
export const MAX_READ_LIMIT = 1000;
/** The stream stops reading the log while this much is queued for the socket, in bytes. */
export const STREAM_HIGH_WATER_BYTES = 1024 * 1024;
/** ...and resumes once the queue is below this. */
const STREAM_LOW_WATER_BYTES = 256 * 1024;
/** How long one read of the stream waits for an append before asking again, in ms. */
const STREAM_WAIT_MS = 25_000;
const STREAM_BATCH = 200;
/** How long a stream client gets to answer the close handshake at shutdown, in ms. */
const CLOSE_GRACE_MS = 1000;

const offsetParam = z
  .string()
  .regex(/^\d{1,15}$/, 'an offset: a non-negative integer')
  .transform(Number);
const eventsQuery = z
  .object({
    from: offsetParam.default(0).describe('first offset wanted (inclusive); 0 = the oldest kept'),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, `an integer from 1 to ${MAX_READ_LIMIT}`)
      .transform(Number)
      .refine((n) => n >= 1 && n <= MAX_READ_LIMIT, `an integer from 1 to ${MAX_READ_LIMIT}`)
      .optional(),
    wait: z
      .string()
      .regex(/^\d{1,5}$/, `ms from 0 to ${MAX_WAIT_MS}`)
      .transform(Number)
      .refine((n) => n <= MAX_WAIT_MS, `ms from 0 to ${MAX_WAIT_MS}`)
      .optional()
      .describe('with nothing to return, wait up to this long (ms) for an event'),
  })
  .strict();
const streamQuery = z.object({ from: offsetParam.default(0) }).strict();

export const busEventSchema = z
  .object({
    id: z.string(),
    offset: z.number().int(),
    region: z.string(),
    time: z.number().int(),
    source: z.discriminatedUnion('type', [
      z.object({ type: z.literal('rule'), rule: z.string() }),
      z.object({ type: z.literal('health') }),
    ]),
    topic: z.string(),
    thingName: z.string().optional(),
    clientId: z.string().optional(),
    payload: z.discriminatedUnion('type', [
      z.object({ type: z.literal('json'), value: z.unknown() }),
      z.object({ type: z.literal('base64'), data: z.string() }),
    ]),
  })
  .meta({ id: 'BusEvent' });

const errors = problemAnswers(400, 401, 403, 503);

export interface EventRoutesOptions {
  /** How often the token of an open stream is verified again, ms. Default 5000 (DEFAULT_STREAM_RECHECK_MS). */
  recheckMs?: number;
  timers?: Timers;
}

/**
 * The region's event bus over HTTP: a long poll (`GET /v1/events`) and a WebSocket stream
 * (`GET /v1/events/stream`), both for the reader role, never for a scoped console token. The
 * WebSocket upgrade is authenticated before it is accepted, as the toolkit's hook decides for the
 * long poll; an open stream ends (1008) soon after its token is revoked. `service` is the
 * region's RegistryService.
 */
export function eventRoutes(bus: EventBus, service: StreamTokens, options: EventRoutesOptions = {}) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const shutdown = new AbortController();
    const guard = new StreamGuard({
      tokens: service,
      roles: READ,
      ...(options.recheckMs === undefined ? {} : { recheckMs: options.recheckMs }),
      ...(options.timers ? { timers: options.timers } : {}),
      onRevoked: (tokenId) => root.log.info({ tokenId }, 'event stream closed: its token was revoked'),
    });
    app.get(EVENTS_PATH, {
      config: { roles: READ, sites: ['analytics'] },
      schema: {
        tags: ['events'],
        description:
          'Events from offset `from` on, oldest first. `gap` is set when retention removed some of them: the answer starts at `firstOffset`. With `wait`, an empty answer waits that long for the next append (long poll). Read on from `next`.',
        querystring: eventsQuery,
        response: {
          200: z.object({
            events: z.array(busEventSchema),
            next: z.number().int(),
            firstOffset: z.number().int(),
            lastOffset: z.number().int(),
            gap: z.object({ requested: z.number().int(), firstOffset: z.number().int() }).optional(),
          }),
          ...errors,
        },
      },
      handler: async (req, reply) => {
        const gone = new AbortController();
        const abort = () => gone.abort();
        // The client leaving, or the server stopping, ends the wait.
        reply.raw.once('close', abort);
        shutdown.signal.addEventListener('abort', abort, { once: true });
        try {
          return await bus.read({
            from: req.query.from,
            limit: req.query.limit ?? DEFAULT_READ_LIMIT,
            waitMs: req.query.wait ?? 0,
            signal: gone.signal,
          });
        } finally {
          reply.raw.off('close', abort);
          shutdown.signal.removeEventListener('abort', abort);
        }
      },
    });
    // Without an Upgrade header the request reaches Fastify; with one it goes to onUpgrade below.
    app.get(STREAM_PATH, {
      config: { roles: READ, sites: ['analytics'] },
      schema: {
        tags: ['events'],
        description: 'WebSocket stream of events (see docs/events.md).',
      },
      handler: async () => {
        throw upgradeRequired();
      },
    });

    const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      // Other paths belong to other upgrade listeners (if any).
      if (url.pathname !== STREAM_PATH) return;
      socket.on('error', () => socket.destroy());
      void acceptStream(req, url, socket, head).catch(() => socket.destroy());
    };
    const acceptStream = async (req: IncomingMessage, url: URL, socket: Duplex, head: Buffer) => {
      const access = await authorizeBearer(req.headers.authorization, service, { roles: READ });
      if (!access.ok) return refuse(socket, access.status, access.code, access.detail);
      const query = streamQuery.safeParse(Object.fromEntries(url.searchParams));
      if (!query.success) {
        const issues = query.error.issues.map((i) => ({
          path: ['querystring', ...i.path.map(String)].join('.'),
          message: i.message,
        }));
        return refuse(
          socket,
          400,
          'IOTDR_VALIDATION_FAILED',
          `invalid querystring: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
          { errors: issues },
        );
      }
      if (shutdown.signal.aborted)
        return refuse(socket, 503, 'IOTDR_EVENTS_CLOSED', 'the server is stopping');
      const token = bearerToken(req.headers.authorization) as string;
      wss.handleUpgrade(req, socket, head, (ws) => {
        guard.add(ws, token, access.principal.tokenId);
        void streamEvents(bus, ws, query.data.from, shutdown.signal);
      });
    };
    root.server.on('upgrade', onUpgrade);
    app.addHook('onClose', async () => {
      root.server.off('upgrade', onUpgrade);
      guard.close();
      shutdown.abort();
      // Upgraded sockets keep the HTTP server open until they end: close them, and cut off
      // clients that do not answer the close handshake.
      const clients = [...wss.clients];
      for (const ws of clients) ws.close(1001, 'server stopping');
      await Promise.race([
        Promise.all(clients.map((ws) => new Promise((resolve) => ws.once('close', resolve)))),
        new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref()),
      ]);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    });
  };
}

function refuse(
  socket: Duplex,
  status: number,
  code: ErrorCode,
  detail: string,
  extra: Record<string, unknown> = {},
): void {
  const body = JSON.stringify({ ...problem(status, code, detail, extra), instance: STREAM_PATH });
  socket.end(
    [
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
      'Content-Type: application/problem+json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...(status === 401 ? ['WWW-Authenticate: Bearer realm="iotdr"'] : []),
      'Connection: close',
      '',
      body,
    ].join('\r\n'),
  );
}

/**
 * Sends every event from `from` on as one JSON text frame each, oldest first, then follows the
 * log. Offsets are gap-free, so a jump between two frames (or a first offset above `from`) means
 * retention removed what lies between. While the socket's send queue is over the high-water
 * mark the log is not read, so a slow consumer holds at most that much in memory.
 */
async function streamEvents(bus: EventBus, ws: WebSocket, from: number, shutdown: AbortSignal) {
  const stop = new AbortController();
  const end = () => stop.abort();
  ws.once('close', end);
  ws.on('error', end);
  shutdown.addEventListener('abort', end, { once: true });
  let cursor = from;
  try {
    while (!stop.signal.aborted) {
      if (ws.bufferedAmount > STREAM_HIGH_WATER_BYTES) {
        await drained(ws, stop.signal);
        continue;
      }
      const page = await bus.read({
        from: cursor,
        limit: STREAM_BATCH,
        waitMs: STREAM_WAIT_MS,
        signal: stop.signal,
      });
      if (stop.signal.aborted) break;
      for (const event of page.events) ws.send(JSON.stringify(event));
      cursor = page.next;
    }
  } catch {
    // The bus closed or failed: tell the client, which reconnects from its last offset + 1.
    if (ws.readyState === ws.OPEN) ws.close(1011, 'event bus unavailable');
  } finally {
    shutdown.removeEventListener('abort', end);
  }
}

function drained(ws: WebSocket, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (signal.aborted || ws.bufferedAmount <= STREAM_LOW_WATER_BYTES) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(check, 10);
  });
}

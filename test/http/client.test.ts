/**
 * The API client against a real server built with createApiServer from route contracts: the
 * answer typed and checked by the route's own schema, problem+json as an IotdrError with its code
 * and field issues, an answer that does not match its schema as a clear error, an unreachable
 * server, and path parameters and queries encoded; then what the control plane's callers need of
 * it: a call ended by its signal or its timeout, a declared non-2xx read as an answer, a public
 * route called without a token, and one connection kept for calls in a row.
 */
import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { createLogger, IotdrError, waitUntil } from '../../src/common/index.js';
import {
  ApiClient,
  authenticate,
  type CallError,
  createApiServer,
  defineRoute,
  problem,
  problemSchema,
  READ,
  routeOf,
  sendProblem,
  staticTokens,
  WRITE,
} from '../../src/http/index.js';

const TOKEN = 'operator-secret-token';
const errors = { 400: problemSchema, 401: problemSchema, 404: problemSchema };

const itemSchema = z.object({ name: z.string(), size: z.number().int(), tags: z.array(z.string()) });
const ITEMS = {
  get: defineRoute({
    method: 'GET',
    url: '/v1/items/:name',
    params: z.object({ name: z.string().min(1).max(128) }).strict(),
    query: z.object({ tag: z.string().optional(), limit: z.coerce.number().int().optional() }).strict(),
    responses: { 200: itemSchema, ...errors },
  }),
  put: defineRoute({
    method: 'PUT',
    url: '/v1/items/:name',
    params: z.object({ name: z.string().regex(/^[a-z]+$/, 'lower-case letters') }).strict(),
    body: z.object({ size: z.number().int().nonnegative(), tags: z.array(z.string()) }).strict(),
    responses: { 200: itemSchema, 201: itemSchema, ...errors },
  }),
  remove: defineRoute({
    method: 'DELETE',
    url: '/v1/items/:name',
    params: z.object({ name: z.string() }).strict(),
    responses: { 204: z.null(), ...errors },
  }),
  /** One answer, two shapes: the caller narrows on `type`. */
  state: defineRoute({
    method: 'GET',
    url: '/v1/state',
    query: z.object({ mode: z.enum(['busy', 'idle']) }).strict(),
    responses: {
      200: z.discriminatedUnion('type', [
        z.object({ type: z.literal('busy'), jobs: z.number().int() }),
        z.object({ type: z.literal('idle'), since: z.number() }),
      ]),
      ...errors,
    },
  }),
  /** What this client expects of /v1/legacy … */
  legacy: defineRoute({
    method: 'GET',
    url: '/v1/legacy',
    responses: { 200: itemSchema, ...errors },
  }),
  /** … and what a server of another version answers there. */
  legacyServed: defineRoute({
    method: 'GET',
    url: '/v1/legacy',
    responses: { 200: z.object({ name: z.string(), size: z.string() }), ...errors },
  }),
  /** A route the server does not have. */
  missing: defineRoute({ method: 'GET', url: '/v1/missing', responses: { 200: itemSchema } }),
};

/** The IotdrError the call fails with; the test fails if it succeeds or fails otherwise. */
async function failure(call: Promise<unknown>): Promise<IotdrError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IotdrError);
  return error as IotdrError;
}

/** A port nothing listens on: one the system gave and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('ApiClient over route contracts', () => {
  let app: FastifyInstance;
  let api: ApiClient;
  const stored = new Map<string, z.infer<typeof itemSchema>>();
  const seen: { name?: string; query?: unknown } = {};

  beforeAll(async () => {
    app = createApiServer({
      logger: createLogger({ level: 'silent' }),
      authenticate: authenticate(staticTokens([{ token: TOKEN, name: 'console', role: 'operator' }])),
    });
    const routes = app.withTypeProvider<ZodTypeProvider>();
    routes.route({
      ...routeOf(ITEMS.get),
      config: { roles: READ },
      handler: async (req) => {
        seen.name = req.params.name;
        seen.query = req.query;
        return stored.get(req.params.name) ?? { name: req.params.name, size: 0, tags: [] };
      },
    });
    routes.route({
      ...routeOf(ITEMS.put),
      config: { roles: WRITE },
      handler: async (req, reply) => {
        const created = !stored.has(req.params.name);
        const item = { name: req.params.name, ...req.body };
        stored.set(req.params.name, item);
        return reply.code(created ? 201 : 200).send(item);
      },
    });
    routes.route({
      ...routeOf(ITEMS.remove),
      config: { roles: WRITE },
      handler: async (req, reply) => {
        stored.delete(req.params.name);
        return reply.code(204).send(null);
      },
    });
    routes.route({
      ...routeOf(ITEMS.state),
      config: { roles: READ },
      handler: async (req) =>
        req.query.mode === 'busy' ? { type: 'busy' as const, jobs: 3 } : { type: 'idle' as const, since: 42 },
    });
    routes.route({
      ...routeOf(ITEMS.legacyServed),
      config: { roles: READ },
      handler: async () => ({ name: 'old', size: 'large' }),
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    api = new ApiClient('test region', url, TOKEN);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('resolves with the answer typed and parsed by the route’s success schema', async () => {
    const created = await api.request(ITEMS.put, {
      params: { name: 'gauge' },
      body: { size: 7, tags: ['a'] },
    });
    expectTypeOf(created).toEqualTypeOf<{ name: string; size: number; tags: string[] }>();
    expect(created).toEqual({ name: 'gauge', size: 7, tags: ['a'] });
    const again = await api.request(ITEMS.put, { params: { name: 'gauge' }, body: { size: 8, tags: [] } });
    expect(again.size).toBe(8);
    expect(await api.request(ITEMS.get, { params: { name: 'gauge' } })).toEqual({
      name: 'gauge',
      size: 8,
      tags: [],
    });
    expect(await api.request(ITEMS.remove, { params: { name: 'gauge' } })).toBeNull();

    // A union answer: the caller narrows on its discriminant instead of casting.
    const busy = await api.request(ITEMS.state, { query: { mode: 'busy' } });
    const idle = await api.request(ITEMS.state, { query: { mode: 'idle' } });
    expect(busy.type === 'busy' ? busy.jobs : undefined).toBe(3);
    expect(idle.type === 'idle' ? idle.since : undefined).toBe(42);
  });

  it('builds the path from its parameters, each encoded, and the query from the defined values', async () => {
    const name = 'a b/c?d#e%f';
    const answer = await api.request(ITEMS.get, {
      params: { name },
      query: { tag: 'x&y=z', limit: 5 },
    });
    expect(answer.name).toBe(name);
    expect(seen.name).toBe(name);
    expect(seen.query).toEqual({ tag: 'x&y=z', limit: 5 });
    await api.request(ITEMS.get, { params: { name: 'plain' }, query: { tag: undefined } });
    expect(seen.query).toEqual({});
  });

  it('turns a problem+json answer into an IotdrError with its code, status and field issues', async () => {
    const error = await failure(
      api.request(ITEMS.put, { params: { name: 'UPPER' }, body: { size: -1, tags: [] } }),
    );
    expect(error.code).toBe('IOTDR_VALIDATION_FAILED');
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/^test region: invalid params: /);
    expect(error.issues).toEqual([{ path: 'params.name', message: 'lower-case letters' }]);

    const bad = await failure(
      api.request(ITEMS.put, { params: { name: 'ok' }, body: { size: -1, tags: [] } }),
    );
    expect(bad.issues.map((i) => i.path)).toEqual(['body.size']);

    const unknown = await failure(api.request(ITEMS.missing));
    expect([unknown.code, unknown.status]).toEqual(['IOTDR_HTTP_NOT_FOUND', 404]);

    const stranger = new ApiClient('test region', api.base, 'not-a-token');
    const denied = await failure(stranger.request(ITEMS.get, { params: { name: 'x' } }));
    expect([denied.code, denied.status]).toEqual(['IOTDR_AUTH_INVALID_TOKEN', 401]);
    // What a caller that records the failure reads: the status and iotdr's code.
    expect((denied as CallError).failure).toMatchObject({
      type: 'refused',
      status: 401,
      code: 'IOTDR_AUTH_INVALID_TOKEN',
    });
  });

  it('refuses an answer that does not match the route’s schema, naming the field', async () => {
    const mismatch = await failure(api.request(ITEMS.legacy));
    expect(mismatch.code).toBe('IOTDR_HTTP_UNEXPECTED_RESPONSE');
    expect(mismatch.message).toContain('test region: GET /v1/legacy');
    expect(mismatch.message).toContain('response.size');
    expect(mismatch.issues.map((i) => i.path)).toEqual(['response.size', 'response.tags']);
    expect((mismatch as CallError).failure).toMatchObject({ type: 'unexpected', status: 200 });
  });

  it('says IOTDR_CLI_UNREACHABLE, naming what it called, when nothing answers', async () => {
    const base = `http://127.0.0.1:${await closedPort()}`;
    const error = await failure(
      new ApiClient('nowhere', base, TOKEN).request(ITEMS.get, { params: { name: 'x' } }),
    );
    expect(error.code).toBe('IOTDR_CLI_UNREACHABLE');
    expect(error.message).toContain(`cannot reach nowhere at ${base}`);
    expect((error as CallError).failure).toEqual({ type: 'unreachable', cause: 'ECONNREFUSED' });
  });
});

const reportSchema = z.object({ status: z.enum(['pass', 'fail']), checks: z.number().int() });
const CALLS = {
  /** Answers after 10 s, or never when the caller goes away first. */
  slow: defineRoute({
    method: 'GET',
    url: '/v1/slow',
    responses: { 200: z.object({ waited: z.boolean() }), ...errors },
  }),
  /** What a caller expects of /v1/probe, like GET /health: public, its 503 an answer as its 200 is … */
  probe: defineRoute({
    method: 'GET',
    url: '/v1/probe',
    public: true,
    query: z.object({ answer: z.enum(['pass', 'fail', 'broken', 'refuse']) }).strict(),
    responses: { 200: reportSchema, 503: reportSchema },
  }),
  /** … and what the server may answer there: a broken 503, and a 400 the caller does not declare. */
  probeServed: defineRoute({
    method: 'GET',
    url: '/v1/probe',
    public: true,
    query: z.object({ answer: z.enum(['pass', 'fail', 'broken', 'refuse']) }).strict(),
    responses: {
      200: reportSchema,
      503: z.union([reportSchema, z.object({ on: z.string() })]),
      400: problemSchema,
    },
  }),
};

describe('ApiClient for the control plane’s callers', () => {
  let app: FastifyInstance;
  let api: ApiClient;
  let connections = 0;
  let callsGone = 0;
  let authorization: string | undefined;

  beforeAll(async () => {
    app = createApiServer({
      logger: createLogger({ level: 'silent' }),
      authenticate: authenticate(staticTokens([{ token: TOKEN, name: 'control', role: 'operator' }])),
    });
    app.server.on('connection', () => {
      connections += 1;
    });
    const routes = app.withTypeProvider<ZodTypeProvider>();
    routes.route({
      ...routeOf(CALLS.slow),
      config: { roles: READ },
      handler: async (_req, reply) => {
        const waited = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), 10_000);
          reply.raw.once('close', () => {
            clearTimeout(timer);
            callsGone += 1;
            resolve(false);
          });
        });
        return { waited };
      },
    });
    routes.route({
      ...routeOf(CALLS.probeServed),
      handler: async (req, reply) => {
        authorization = req.headers.authorization;
        const answer = req.query.answer;
        if (answer === 'pass') return { status: 'pass' as const, checks: 2 };
        if (answer === 'fail') return reply.code(503).send({ status: 'fail', checks: 2 });
        if (answer === 'broken') return reply.code(503).send({ on: 'fire' });
        return sendProblem(req, reply, problem(400, 'IOTDR_HTTP_BAD_REQUEST', 'not now'));
      },
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    api = new ApiClient('control', url, TOKEN);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('ends a call when its signal aborts, with the signal’s reason, and the server sees it go', async () => {
    const controller = new AbortController();
    const reason = new Error('the follower stops');
    const gone = callsGone;
    const started = Date.now();
    setTimeout(() => controller.abort(reason), 100);
    const error = await api.request(CALLS.slow, { signal: controller.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBe(reason);
    expect(Date.now() - started).toBeLessThan(5000);
    await waitUntil(() => callsGone > gone, { timeoutMs: 5000, what: 'the server to see the call go' });
  });

  it('ends a call at its timeout: IOTDR_CLI_UNREACHABLE, saying how long it waited', async () => {
    const error = await failure(api.request(CALLS.slow, { timeoutMs: 150 }));
    expect(error.code).toBe('IOTDR_CLI_UNREACHABLE');
    expect(error.message).toContain('no answer within 150 ms');
    expect((error as CallError).failure).toEqual({ type: 'timeout', timeoutMs: 150 });
  });

  it('reads a declared non-2xx as a typed answer, and throws a status the route does not declare', async () => {
    const probe = new ApiClient('a region', api.base, undefined);
    const up = await probe.requestAny(CALLS.probe, { query: { answer: 'pass' } });
    const down = await probe.requestAny(CALLS.probe, { query: { answer: 'fail' } });
    expectTypeOf(down).toEqualTypeOf<
      | { status: 200; body: { status: 'pass' | 'fail'; checks: number } }
      | { status: 503; body: { status: 'pass' | 'fail'; checks: number } }
    >();
    expect(up).toEqual({ status: 200, body: { status: 'pass', checks: 2 } });
    expect(down).toEqual({ status: 503, body: { status: 'fail', checks: 2 } });
    // A public route: the client without a token sends none.
    expect(authorization).toBeUndefined();

    // `request` still takes only a success.
    const refused = await failure(probe.request(CALLS.probe, { query: { answer: 'fail' } }));
    expect((refused as CallError).failure).toMatchObject({ type: 'refused', status: 503, code: undefined });
    // A declared status whose body is not what the route says.
    const broken = await failure(probe.requestAny(CALLS.probe, { query: { answer: 'broken' } }));
    expect(broken.code).toBe('IOTDR_HTTP_UNEXPECTED_RESPONSE');
    expect((broken as CallError).failure).toMatchObject({ type: 'unexpected', status: 503 });
    // A status the route does not declare: its problem, as `request` throws it.
    const undeclared = await failure(probe.requestAny(CALLS.probe, { query: { answer: 'refuse' } }));
    expect([undeclared.code, undeclared.status]).toEqual(['IOTDR_HTTP_BAD_REQUEST', 400]);
  });

  it('keeps one connection for calls in a row, as a checker probing every second needs', async () => {
    const probe = new ApiClient('a region', api.base, undefined);
    await probe.requestAny(CALLS.probe, { query: { answer: 'pass' } });
    const before = connections;
    for (let i = 0; i < 3; i++) await probe.requestAny(CALLS.probe, { query: { answer: 'fail' } });
    expect(connections - before).toBe(0);
  });
});

/**
 * Compile-time checks, run by tsc (`npm run check`), never called: a call is typed by its contract,
 * so what a route requires cannot be left out and what it does not take cannot be sent.
 */
function contractTypeChecks(api: ApiClient): void {
  // @ts-expect-error the path parameter is required
  void api.request(ITEMS.get);
  // @ts-expect-error the body is required
  void api.request(ITEMS.put, { params: { name: 'a' } });
  // @ts-expect-error the body's fields are typed
  void api.request(ITEMS.put, { params: { name: 'a' }, body: { size: 'big', tags: [] } });
  // @ts-expect-error a required query
  void api.request(ITEMS.state);
  // @ts-expect-error a route without a body takes none
  void api.request(ITEMS.remove, { params: { name: 'a' }, body: {} });
}
void contractTypeChecks;

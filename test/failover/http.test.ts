/**
 * The control API over real HTTP: state, decision log, routing controls with who and why, the
 * observations of a remote checker through HttpObservationSink, and problem+json for bad input.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import {
  type FailoverController,
  type FailoverStore,
  failoverRoutes,
  HttpObservationSink,
  registerFailoverMetrics,
} from '../../src/failover/index.js';
import { buildApi, staticTokens } from '../../src/http/index.js';
import { fetch } from '../harness/https.js';
import { controllerAt, ManualClock, observation, tempDir } from './support.js';

const ADMIN = 'admin-secret-token';
const OPERATOR = 'checker-secret-token';
const READER = 'reader-secret-token';

describe('the control API', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: FailoverStore;
  let controller: FailoverController;
  let app: FastifyInstance;
  let url: string;
  const clock = new ManualClock();

  beforeAll(async () => {
    dir = await tempDir();
    ({ controller, store } = controllerAt(join(dir.dir, 'failover.db'), clock, {
      checkers: ['control', 'witness'],
      failureThreshold: 2,
      recoveryThreshold: 2,
    }));
    await controller.start();
    const metrics = new Registry();
    registerFailoverMetrics(metrics, controller);
    app = await buildApi({
      openapi: { title: 'the control API', description: 'under test' },
      logger: createLogger({ level: 'silent' }),
      tokens: staticTokens([
        { token: ADMIN, name: 'admin', role: 'admin' },
        { token: OPERATOR, name: 'witness-checker', role: 'operator' },
        { token: READER, name: 'dashboard', role: 'reader' },
      ]),
      routes: [failoverRoutes(controller)],
      metrics,
    });
    url = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await app?.close();
    store?.close();
    await dir?.remove();
  });

  async function call(method: string, path: string, token: string | null, body?: unknown) {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: text ? JSON.parse(text) : undefined,
    };
  }

  it('keeps the conventions of every iotdr API: request ids, JSON only, a 1 MiB body limit, problem+json', async () => {
    const traced = await fetch(`${url}/v1/failover/state`, {
      headers: { authorization: `Bearer ${READER}`, 'x-request-id': 'trace-42' },
    });
    expect(traced.status).toBe(200);
    expect(traced.headers.get('x-request-id')).toBe('trace-42');
    // An id that is not a plain token is replaced, never echoed.
    const replaced = await fetch(`${url}/v1/failover/state`, {
      headers: { authorization: `Bearer ${READER}`, 'x-request-id': 'a b<script>' },
    });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const unknown = await fetch(`${url}/v1/nowhere`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toContain('application/problem+json');
    expect(((await unknown.json()) as { code: string }).code).toBe('IOTDR_HTTP_NOT_FOUND');
    const post = (body: string, type = 'application/json') =>
      fetch(`${url}/v1/failover/switch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': type },
        body,
      });
    expect((await post('to=us-west', 'text/plain')).status).toBe(415);
    // Over 256 KiB (the control API's old limit) and under 1 MiB: read, then refused by the schema.
    const big = await post(JSON.stringify({ to: 'us-west', reason: 'x'.repeat(300 * 1024) }));
    expect(big.status).toBe(400);
    const huge = await post(JSON.stringify({ to: 'us-west', reason: 'x'.repeat(1024 * 1024) }));
    expect(huge.status).toBe(413);
    expect(huge.headers.get('content-type')).toContain('application/problem+json');
  });

  it('takes a remote checker’s observations and lets them vote', async () => {
    const sink = new HttpObservationSink({ controlUrl: url, token: OPERATOR });
    for (let i = 0; i < 2; i++) {
      controller.report([
        observation('control', 'us-east', true, clock.now()),
        observation('control', 'us-west', true, clock.now()),
      ]);
      await sink.report([
        observation('witness', 'us-east', true, clock.now()),
        observation('witness', 'us-west', true, clock.now()),
      ]);
      clock.advance(500);
    }
    const state = await call('GET', '/v1/failover/state', READER);
    expect(state.status).toBe(200);
    expect(state.body).toMatchObject({
      activeRegion: 'us-east',
      epoch: 0,
      quorum: 2,
      mode: { type: 'health' },
    });
    expect(state.body.regions[0].checkers.witness).toMatchObject({ vote: 'up', consecutiveSuccesses: 2 });

    // Not a configured checker: refused, and nothing counted.
    const intruder = new HttpObservationSink({ controlUrl: url, token: OPERATOR });
    await expect(
      intruder.report([observation('intruder', 'us-east', false, clock.now())]),
    ).rejects.toMatchObject({
      code: 'IOTDR_FAILOVER_OBSERVATIONS_UNDELIVERED',
      details: { status: 403, code: 'IOTDR_FAILOVER_UNKNOWN_CHECKER' },
    });
    // A reader may not report.
    const reader = new HttpObservationSink({ controlUrl: url, token: READER });
    await expect(
      reader.report([observation('witness', 'us-east', false, clock.now())]),
    ).rejects.toMatchObject({
      details: { status: 403, code: 'IOTDR_AUTH_FORBIDDEN' },
    });
    const bad = await call('POST', '/v1/observations', OPERATOR, {
      checker: 'witness',
      observations: [{ ...observation('control', 'us-east', false, 1), extra: 1 }],
    });
    expect(bad.status).toBe(400);
    expect(bad.type).toContain('application/problem+json');
    expect(bad.body.code).toBe('IOTDR_VALIDATION_FAILED');
    const after = await call('GET', '/v1/failover/state', READER);
    expect(after.body.regions[0].checkers.witness.consecutiveSuccesses).toBe(2);
  });

  it('switches by routing control (admin only), records who and why, and pages the decision log', async () => {
    expect((await call('POST', '/v1/failover/switch', null, { to: 'us-west', reason: 'x' })).status).toBe(
      401,
    );
    const forbidden = await call('POST', '/v1/failover/switch', OPERATOR, { to: 'us-west', reason: 'x' });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.code).toBe('IOTDR_AUTH_FORBIDDEN');
    const noReason = await call('POST', '/v1/failover/switch', ADMIN, { to: 'us-west', reason: '' });
    expect(noReason.status).toBe(400);
    const unknown = await call('POST', '/v1/failover/switch', ADMIN, { to: 'eu-central', reason: 'test' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('IOTDR_FAILOVER_UNKNOWN_REGION');
    expect(controller.decision().epoch).toBe(0);

    const moved = await call('POST', '/v1/failover/switch', ADMIN, { to: 'us-west', reason: 'drill 42' });
    expect(moved.status).toBe(200);
    expect(moved.body.switch).toMatchObject({
      to: 'us-west',
      epoch: 1,
      trigger: { type: 'manual', who: 'admin', reason: 'drill 42' },
    });
    expect(moved.body.state.mode).toMatchObject({
      type: 'override',
      override: { region: 'us-west', who: 'admin' },
    });

    const cleared = await call('DELETE', '/v1/failover/override?reason=drill%20over', ADMIN);
    expect(cleared.status).toBe(200);
    expect(cleared.body.switch).toBeNull(); // us-west is healthy; failback is manual
    expect(cleared.body.state).toMatchObject({
      activeRegion: 'us-west',
      failbackAvailable: 'us-east',
      mode: { type: 'health' },
    });
    expect((await call('DELETE', '/v1/failover/override?reason=again', ADMIN)).body.code).toBe(
      'IOTDR_FAILOVER_NO_OVERRIDE',
    );

    const back = await call('POST', '/v1/failover/failback', ADMIN, { reason: 'drill over' });
    expect(back.status).toBe(200);
    expect(back.body.switch).toMatchObject({
      from: 'us-west',
      to: 'us-east',
      epoch: 2,
      trigger: { type: 'failback', who: 'admin' },
    });
    const none = await call('POST', '/v1/failover/failback', ADMIN, { reason: 'again' });
    expect(none.status).toBe(409);
    expect(none.body.code).toBe('IOTDR_FAILOVER_NO_FAILBACK_TARGET');

    const page1 = await call('GET', '/v1/failover/events?limit=2', READER);
    expect(page1.body.items).toHaveLength(2);
    const page2 = await call('GET', `/v1/failover/events?limit=100&after=${page1.body.next}`, READER);
    const all = [...page1.body.items, ...page2.body.items];
    expect(all.map((e: { seq: number }) => e.seq)).toEqual(
      [...all.map((e: { seq: number }) => e.seq)].sort((a, b) => a - b),
    );
    expect(
      all.filter((e: { type: string }) => e.type === 'switch').map((e: { epoch: number }) => e.epoch),
    ).toEqual([1, 2]);
    expect(all.find((e: { type: string }) => e.type === 'override-cleared')).toMatchObject({
      who: 'admin',
      reason: 'drill over',
    });
    expect((await call('GET', '/v1/failover/events?limit=0', READER)).status).toBe(400);

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/iotdr_failover_epoch 2/);
    expect(metrics).toMatch(/iotdr_failover_active_region\{region="us-east"\} 1/);
    expect(metrics).toMatch(/iotdr_failover_switches_total\{trigger="failback",to="us-east"\} 1/);
    expect(metrics).toMatch(/iotdr_failover_no_healthy_region 0/);
  });
});

/**
 * Busy is not dead: a real checker probing real HTTP servers that answer /health late, with
 * timed-out checkpoints, with errors, or not at all, feeding a real controller on real time.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checker, FailoverController, FailoverStore, type Observation } from '../../src/failover/index.js';
import { eventually } from '../harness/cluster.js';
import { tempDir } from './support.js';

type Behaviour =
  | { type: 'pass'; delayMs: number }
  | { type: 'timed-out' }
  | { type: 'error' }
  | { type: 'silent' };

/** A region's /health as the test scripts it. */
async function fakeRegion(name: string): Promise<{ server: Server; url: string; set(b: Behaviour): void }> {
  let behaviour: Behaviour = { type: 'pass', delayMs: 0 };
  const check = (status: 'pass' | 'fail', extra: Record<string, unknown> = {}) => ({
    componentId: 'broker',
    componentType: 'component',
    observedValue: 1000,
    observedUnit: 'ms',
    status,
    time: new Date().toISOString(),
    critical: true,
    ...extra,
  });
  const server = createServer((_req, res) => {
    const b = behaviour;
    if (b.type === 'silent') return;
    const answer = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/health+json' });
      res.end(JSON.stringify(body));
    };
    const base = { version: '0', releaseId: '0', serviceId: name, description: name };
    if (b.type === 'pass')
      setTimeout(
        () => answer(200, { ...base, status: 'pass', checks: { 'broker:roundTrip': [check('pass')] } }),
        b.delayMs,
      );
    else if (b.type === 'timed-out')
      answer(503, {
        ...base,
        status: 'fail',
        checks: {
          'broker:roundTrip': [
            check('fail', {
              output: 'timed out after 1000 ms (waiting for its own message)',
              timedOut: true,
            }),
          ],
        },
      });
    else
      answer(503, {
        ...base,
        status: 'fail',
        checks: { 'broker:roundTrip': [check('fail', { output: 'connection failed: ECONNREFUSED' })] },
      });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    set: (b) => {
      behaviour = b;
    },
  };
}

const TIMEOUT_MS = 200;

describe('a busy region against a dead one', () => {
  let dir: { dir: string; remove(): Promise<void> };
  let east: Awaited<ReturnType<typeof fakeRegion>>;
  let west: Awaited<ReturnType<typeof fakeRegion>>;
  const stops: Array<() => Promise<void> | void> = [];

  beforeEach(async () => {
    dir = await tempDir();
    east = await fakeRegion('us-east');
    west = await fakeRegion('us-west');
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    east.server.closeAllConnections();
    west.server.closeAllConnections();
    east.server.close();
    west.server.close();
    await dir.remove();
  });

  function checker(seen: Observation[] = []): Checker {
    return new Checker({
      id: 'control',
      regions: [
        { name: 'us-east', url: east.url },
        { name: 'us-west', url: west.url },
      ],
      sink: { report: (o) => void seen.push(...o) },
      timeoutMs: TIMEOUT_MS,
      giveUpMs: 600,
    });
  }

  it('classifies each probe: on time, late, timed-out checkpoints, an error, no answer', async () => {
    const c = checker();
    expect((await c.probe('us-east')).outcome).toBe('pass');
    east.set({ type: 'pass', delayMs: TIMEOUT_MS + 100 });
    const late = await c.probe('us-east');
    expect(late.outcome).toBe('slow');
    expect(late.latencyMs).toBeGreaterThan(TIMEOUT_MS);
    east.set({ type: 'timed-out' });
    const timedOut = await c.probe('us-east');
    expect(timedOut).toMatchObject({
      outcome: 'slow',
      failing: [
        { component: 'broker', critical: true, timedOut: true, observedValue: 1000, observedUnit: 'ms' },
      ],
    });
    east.set({ type: 'error' });
    const error = await c.probe('us-east');
    expect(error).toMatchObject({
      outcome: 'fail',
      failing: [{ component: 'broker', output: 'connection failed: ECONNREFUSED' }],
    });
    east.set({ type: 'silent' });
    const silent = await c.probe('us-east');
    expect(silent.outcome).toBe('fail');
    expect(silent.error).toMatch(/no answer within 600 ms/);
  });

  /** A controller fed by the checker, on real time, probing every 200 ms. */
  async function running(degradedBudgetMs: number) {
    const store = new FailoverStore(join(dir.dir, 'failover.db'));
    stops.push(() => store.close());
    const controller = new FailoverController({
      regions: [
        { name: 'us-east', priority: 1, url: east.url },
        { name: 'us-west', priority: 2, url: west.url },
      ],
      checkers: ['control'],
      store,
      failureThreshold: 3,
      recoveryThreshold: 2,
      degradedBudgetMs,
      observationMaxAgeMs: 3 * 200 + 600,
    });
    await controller.start();
    stops.push(() => controller.stop());
    const c = new Checker({
      id: 'control',
      regions: [
        { name: 'us-east', url: east.url },
        { name: 'us-west', url: west.url },
      ],
      sink: controller,
      intervalMs: 200,
      timeoutMs: TIMEOUT_MS,
      giveUpMs: 600,
    });
    c.start();
    stops.push(() => c.stop());
    await eventually(
      async () => controller.state().mode.type === 'health',
      'the controller to decide',
      10_000,
    );
    return controller;
  }

  it('declares down a region answering every probe just over its timeout, once the budget runs out, and not before', async () => {
    const controller = await running(2000);
    east.set({ type: 'pass', delayMs: TIMEOUT_MS + 50 });
    await eventually(
      async () => controller.state().regions[0]?.degraded != null,
      'us-east to be degraded',
      5000,
    );
    const degraded = controller.state().regions[0]?.degraded;
    expect(controller.decision().activeRegion).toBe('us-east');
    await eventually(
      async () => controller.decision().activeRegion === 'us-west',
      'the move to us-west',
      10_000,
    );
    const event = (await await controller.events({ limit: 100, type: 'region-health' })).find(
      (e) => e.type === 'region-health' && e.to === 'down',
    );
    expect(event).toMatchObject({ region: 'us-east', cause: 'degraded' });
    // It was slow for the whole budget before it was moved.
    expect((event?.at ?? 0) - (degraded?.since ?? 0)).toBeGreaterThanOrEqual(2000 - 600);
    expect(event?.type === 'region-health' && event.checkers.control?.downBecause).toBe('degraded');
  });

  it('keeps a region whose checkpoints time out within the budget, and moves a failing one on failureThreshold', async () => {
    const controller = await running(60_000);
    east.set({ type: 'timed-out' });
    // Ten probes of timed-out checkpoints, far past failureThreshold: degraded, still active.
    await eventually(
      async () => (controller.state().regions[0]?.checkers.control?.consecutiveNotPassing ?? 0) >= 10,
      'ten slow probes of us-east',
      10_000,
    );
    expect(controller.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
    expect(controller.state().regions[0]).toMatchObject({
      status: 'up',
      degraded: { failing: [{ timedOut: true }] },
    });
    const failingSince = Date.now();
    east.set({ type: 'error' });
    await eventually(
      async () => controller.decision().activeRegion === 'us-west',
      'the move to us-west',
      5000,
    );
    expect((await controller.events({ limit: 100, type: 'region-health' })).at(-1)).toMatchObject({
      region: 'us-east',
      to: 'down',
      cause: 'failures',
      failing: [{ output: 'connection failed: ECONNREFUSED' }],
    });
    expect(Date.now() - failingSince).toBeLessThan(60_000);
    expect(controller.state().lastSwitch?.timings.firstFailedProbeAt).toBeGreaterThanOrEqual(
      failingSince - 200,
    );
  });
});

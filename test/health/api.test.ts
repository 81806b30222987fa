import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  customCheckpoint,
  HealthService,
  type HealthServiceOptions,
  httpCheckpoint,
  type ProbeResult,
  registryCheckpoint,
} from '../../src/health/index.js';
import { eventually } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { deferred, get, openRegistry, startApi, startHttp, within } from './support.js';

describe('GET /health over the region API', () => {
  let registry: Awaited<ReturnType<typeof openRegistry>>;
  let app: Awaited<ReturnType<typeof startHttp>>;
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    registry = await openRegistry();
    app = await startHttp((req, res) => {
      res.writeHead(req.url === '/health' ? 200 : 404, { 'content-type': 'application/json' });
      res.end('{"status":"UP"}');
    });
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });
  afterAll(async () => {
    await app?.stop();
    await registry?.close();
  });

  async function serve(
    setup: (health: HealthService) => void,
    options: Pick<HealthServiceOptions, 'timeoutMs' | 'cacheMs' | 'clock'> = {},
  ) {
    const api = await startApi(registry.service, (metrics) => {
      const health = new HealthService({ serviceId: 'us-east', version: '1.2.3', metrics, ...options });
      setup(health);
      return health;
    });
    closers.push(api.close);
    return api;
  }

  it('answers every checkpoint in application/health+json, without credentials, pass → 200', async () => {
    const { url } = await serve((h) =>
      h
        .add(registryCheckpoint(registry.service))
        .add(httpCheckpoint({ name: 'orders', component: 'app', url: `${app.url}/health` }))
        .add(customCheckpoint('events', 'events', async () => {}, { measurement: 'appendRead' })),
    );
    const res = await get(`${url}/health`);
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^application\/health\+json/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({
      status: 'pass',
      version: '1.2.3',
      releaseId: '1.2.3',
      serviceId: 'us-east',
      description: 'iotdr region us-east',
    });
    expect(res.body.output).toBeUndefined();
    expect(Object.keys(res.body.checks)).toEqual([
      'registry:writeRead',
      'app:responseTime',
      'events:appendRead',
    ]);
    const [entry] = res.body.checks['registry:writeRead'];
    expect(entry).toMatchObject({
      componentId: 'registry',
      componentType: 'datastore',
      observedUnit: 'ms',
      status: 'pass',
      critical: true,
    });
    expect(typeof entry.observedValue).toBe('number');
    expect(new Date(entry.time).toISOString()).toBe(entry.time);
    expect(entry.output).toBeUndefined();
    expect(res.body.checks['app:responseTime'][0]).toMatchObject({ componentId: 'orders', status: 'pass' });
  });

  it('fails (503) on a critical checkpoint and warns (200) on a non-critical one, saying which', async () => {
    const failing = async (): Promise<ProbeResult> => {
      throw new Error('bus closed');
    };
    const { url } = await serve((h) =>
      h
        .add(registryCheckpoint(registry.service))
        .add(customCheckpoint('replication', 'replication', failing, { measurement: 'lag' })),
    );
    const warn = await get(`${url}/health`);
    expect(warn.status).toBe(200);
    expect(warn.body.status).toBe('warn');
    expect(warn.body.output).toBe('replication: bus closed');
    expect(warn.body.checks['replication:lag'][0]).toMatchObject({
      status: 'fail',
      output: 'bus closed',
      critical: false,
    });

    const { url: url2 } = await serve((h) =>
      h.add(registryCheckpoint(registry.service)).add(customCheckpoint('events', 'events', failing)),
    );
    const fail = await get(`${url2}/health`);
    expect(fail.status).toBe(503);
    expect(fail.type).toMatch(/^application\/health\+json/);
    expect(fail.body.status).toBe('fail');
    expect(fail.body.checks['registry:writeRead'][0].status).toBe('pass');
    expect(fail.body.checks['events:responseTime'][0]).toMatchObject({ status: 'fail', critical: true });
  });

  it('answers one checkpoint at /health/{checkpoint} and 404 problem+json for an unknown one', async () => {
    const { url } = await serve((h) =>
      h
        .add(registryCheckpoint(registry.service))
        .add(customCheckpoint('events', 'events', () => Promise.reject(new Error('down')))),
    );
    const one = await get(`${url}/health/registry`);
    expect(one.status).toBe(200);
    expect(one.type).toMatch(/^application\/health\+json/);
    expect(Object.keys(one.body.checks)).toEqual(['registry:writeRead']);
    const events = await get(`${url}/health/events`);
    expect(events.status).toBe(503);
    expect(events.body.checks['events:responseTime'][0].output).toBe('down');

    const unknown = await get(`${url}/health/nope`);
    expect(unknown.status).toBe(404);
    expect(unknown.type).toMatch(/^application\/problem\+json/);
    expect(unknown.body).toMatchObject({ code: 'IOTDR_HEALTH_UNKNOWN_CHECKPOINT', status: 404 });
    expect(unknown.body.checkpoints).toEqual(['registry', 'events']);
  });

  it('runs a checkpoint at most once per cache window however many ask, and says how old the answer is', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    let runs = 0;
    let healthy = true;
    const { url } = await serve(
      (h) =>
        h.add(
          customCheckpoint('events', 'events', async () => {
            runs += 1;
            if (!healthy) throw new Error('append failed');
          }),
        ),
      { cacheMs: 500, clock: { now: () => now } },
    );
    const burst = await Promise.all(Array.from({ length: 40 }, () => get(`${url}/health`)));
    expect(burst.map((a) => a.status)).toEqual(Array(40).fill(200));
    expect(runs).toBe(1);

    // Within the window the region stands by that run, even now that the bus has failed.
    healthy = false;
    now += 499;
    const cached = await get(`${url}/health`);
    expect(cached.status).toBe(200);
    expect(cached.body.checks['events:responseTime'][0]).toMatchObject({ status: 'pass', ageMs: 499 });
    expect((await get(`${url}/health/events`)).body.checks['events:responseTime'][0].ageMs).toBe(499);
    expect(runs).toBe(1);

    // At the window's end the next request runs the checkpoint again.
    now += 1;
    const fresh = await get(`${url}/health`);
    expect(fresh.status).toBe(503);
    expect(fresh.body.checks['events:responseTime'][0]).toMatchObject({ status: 'fail', ageMs: 0 });
    expect(runs).toBe(2);
  });

  it('without a cache window (the library default), probes on every request', async () => {
    let runs = 0;
    let healthy = true;
    const { url } = await serve((h) =>
      h.add(
        customCheckpoint('events', 'events', async () => {
          runs += 1;
          if (!healthy) throw new Error('append failed');
        }),
      ),
    );
    for (let i = 1; i <= 3; i += 1) {
      expect((await get(`${url}/health`)).status).toBe(200);
      expect(runs).toBe(i);
    }
    healthy = false;
    expect((await get(`${url}/health`)).status).toBe(503);
    expect(runs).toBe(4);
  });

  it('coalesces concurrent requests onto one run', async () => {
    let runs = 0;
    let asked = 0;
    const gate = deferred<void>();
    // Counts the requests that reached the service, so the gate opens only once all three wait.
    class Counting extends HealthService {
      override check() {
        asked += 1;
        return super.check();
      }
      override checkOne(name: string) {
        asked += 1;
        return super.checkOne(name);
      }
    }
    const api = await startApi(registry.service, (metrics) =>
      new Counting({ serviceId: 'us-east', metrics }).add(
        customCheckpoint('events', 'events', async () => {
          runs += 1;
          await gate.promise;
        }),
      ),
    );
    closers.push(api.close);
    const { url } = api;
    const answers = Promise.all([get(`${url}/health`), get(`${url}/health`), get(`${url}/health/events`)]);
    await eventually(async () => asked === 3, 'the three requests to reach the service', 5000);
    gate.resolve();
    const all = await answers;
    expect(all.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(runs).toBe(1);
  });

  it('answers within its budget while a checkpoint hangs, without blocking the others or piling up runs', async () => {
    const hung = deferred<ProbeResult>();
    let hangRuns = 0;
    let hangAborted = false;
    const { url, health } = await serve(
      (h) =>
        h
          .add(registryCheckpoint(registry.service))
          .add(httpCheckpoint({ name: 'orders', component: 'app', url: `${app.url}/health` }))
          .add(
            customCheckpoint('events', 'events', async (context) => {
              hangRuns += 1;
              context.signal.addEventListener('abort', () => {
                hangAborted = true;
              });
              if (hangRuns === 1) {
                context.step('appending');
                return hung.promise; // ignores the abort: a dependency that really hangs
              }
            }),
          ),
      { timeoutMs: 300 },
    );
    expect(health.budgetMs).toBe(550);
    // Generous bound on the wait (the budget is 550 ms); not a speed assertion.
    const first = await within(5000, get(`${url}/health`), 'the /health answer');
    expect(first.status).toBe(503);
    expect(first.body.checks['events:responseTime'][0]).toMatchObject({
      status: 'fail',
      output: 'timed out after 300 ms (appending)',
    });
    expect(first.body.checks['registry:writeRead'][0].status).toBe('pass');
    expect(first.body.checks['app:responseTime'][0].status).toBe('pass');
    expect(hangAborted).toBe(true);

    // Still hanging: reported failing, and no second run is started.
    const second = await within(5000, get(`${url}/health`), 'the second /health answer');
    expect(second.status).toBe(503);
    expect(second.body.checks['events:responseTime'][0].output).toMatch(/still hanging/);
    expect(second.body.checks['registry:writeRead'][0].status).toBe('pass');
    expect(hangRuns).toBe(1);

    // Its late result is dropped; once it has ended, the next request probes again.
    hung.resolve({ status: 'pass', observedValue: 1 });
    await new Promise((r) => setImmediate(r));
    const third = await get(`${url}/health`);
    expect(hangRuns).toBe(2);
    expect(third.status).toBe(200);
    expect(third.body.status).toBe('pass');
  });

  it('exports per-checkpoint status and duration metrics', async () => {
    const { url } = await serve((h) =>
      h
        .add(registryCheckpoint(registry.service))
        .add(customCheckpoint('events', 'events', () => Promise.reject(new Error('x')))),
    );
    await get(`${url}/health`);
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(
      /iotdr_health_checkpoint_status\{checkpoint="registry",component="registry",status="pass"\} 1/,
    );
    expect(text).toMatch(
      /iotdr_health_checkpoint_status\{checkpoint="events",component="events",status="fail"\} 1/,
    );
    expect(text).toMatch(
      /iotdr_health_checkpoint_duration_seconds_count\{checkpoint="registry",component="registry"\} 1/,
    );
    expect(text).toMatch(/iotdr_health_status\{status="fail"\} 1/);
  });
});

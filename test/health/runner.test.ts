import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/common/index.js';
import {
  customCheckpoint,
  DuplicateCheckpointError,
  HealthService,
  healthCacheWindowMs,
  InvalidCheckpointError,
  type ProbeResult,
  type Timers,
  UnknownCheckpointError,
} from '../../src/health/index.js';
import { deferred } from './support.js';

/** Timers and a clock the test moves by hand: timeouts fire when the test says so. */
function manualTime(start = Date.parse('2026-01-01T00:00:00Z')) {
  let now = start;
  let next = 1;
  const pending = new Map<number, { at: number; callback: () => void }>();
  const clock: Clock = { now: () => now };
  const timers: Timers = {
    setTimeout(callback, ms) {
      const id = next++;
      pending.set(id, { at: now + ms, callback });
      return id;
    },
    clearTimeout(handle) {
      pending.delete(handle as number);
    },
  };
  return {
    clock,
    timers,
    pending: () => pending.size,
    advance(ms: number) {
      now += ms;
      for (const [id, t] of [...pending]) {
        if (t.at <= now) {
          pending.delete(id);
          t.callback();
        }
      }
    },
  };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('HealthService with injected time', () => {
  it('fails a checkpoint at exactly its timeout, aborts it, and ignores its late result', async () => {
    const time = manualTime();
    const health = new HealthService({ serviceId: 'eu-west', clock: time.clock, timers: time.timers });
    const late = deferred<ProbeResult>();
    let signal: AbortSignal | undefined;
    health.add(
      customCheckpoint('slow', 'app', async (context) => {
        signal = context.signal;
        context.step('waiting for the service');
        return late.promise;
      }),
    );
    health.add(customCheckpoint('quick', 'cnc', async () => 7, { timeoutMs: 5000 }));
    let answered = false;
    const answer = health.check().then((r) => {
      answered = true;
      return r;
    });
    await flush();
    time.advance(999);
    await flush();
    expect(answered).toBe(false);
    time.advance(1);
    const report = await answer;
    expect(report.status).toBe('fail');
    expect(report.checks['app:responseTime']?.[0]).toMatchObject({
      status: 'fail',
      observedValue: 1000,
      output: 'timed out after 1000 ms (waiting for the service)',
      time: '2026-01-01T00:00:01.000Z',
    });
    expect(report.checks['cnc:responseTime']?.[0]).toMatchObject({ status: 'pass', observedValue: 7 });
    expect(signal?.aborted).toBe(true);
    // The quick checkpoint's timer was cleared when it answered; the slow one's fired.
    expect(time.pending()).toBe(0);

    // The late pass changes nothing already answered; the next request runs the probe again.
    late.resolve({ status: 'pass', observedValue: 1 });
    await flush();
    expect(report.checks['app:responseTime']?.[0]?.status).toBe('fail');
    const next = await health.checkOne('slow');
    expect(next.checks['app:responseTime']?.[0]).toMatchObject({ status: 'pass', observedValue: 1 });
  });

  it('does not start a checkpoint again while its last run hangs', async () => {
    const time = manualTime();
    const health = new HealthService({ serviceId: 'eu-west', clock: time.clock, timers: time.timers });
    let runs = 0;
    const hang = deferred<void>();
    health.add(
      customCheckpoint('stuck', 'events', async () => {
        runs += 1;
        if (runs === 1) await hang.promise;
      }),
    );
    const first = health.check();
    await flush();
    time.advance(1000);
    expect((await first).status).toBe('fail');
    time.advance(4000);
    for (let i = 0; i < 5; i += 1) {
      const again = await health.check();
      expect(again.checks['events:responseTime']?.[0]).toMatchObject({
        status: 'fail',
        observedValue: 5000,
        output: 'timed out after 1000 ms; that run is still hanging (5000 ms), so no new one was started',
      });
    }
    expect(runs).toBe(1);
    hang.resolve();
    await flush();
    expect((await health.check()).status).toBe('pass');
    expect(runs).toBe(2);
  });

  it("counts the cache window from a run's start, so a slow run is not answered twice as long", async () => {
    const time = manualTime();
    const health = new HealthService({
      serviceId: 'eu-west',
      cacheMs: 500,
      clock: time.clock,
      timers: time.timers,
    });
    let runs = 0;
    const first = deferred<void>();
    health.add(
      customCheckpoint('events', 'events', async () => {
        runs += 1;
        if (runs === 1) await first.promise;
      }),
    );
    // A burst while the run is in progress: one run.
    const burst = Array.from({ length: 25 }, () => health.check());
    await flush();
    time.advance(300);
    first.resolve();
    const answers = await Promise.all(burst);
    expect(runs).toBe(1);
    expect(answers.every((a) => a.checks['events:responseTime']?.[0]?.ageMs === 0)).toBe(true);
    // 499 ms after the run started (199 after it ended): answered as is, with its age.
    time.advance(199);
    expect((await health.checkOne('events')).checks['events:responseTime']?.[0]?.ageMs).toBe(199);
    expect(runs).toBe(1);
    // 500 ms after it started: a new run, though it ended only 200 ms ago.
    time.advance(1);
    const next = await health.check();
    expect(runs).toBe(2);
    expect(next.checks['events:responseTime']?.[0]).toMatchObject({ status: 'pass', ageMs: 0 });
  });

  it("keeps a region's cache window at most half the checkers' interval", () => {
    expect(healthCacheWindowMs(500, 1000)).toBe(500);
    expect(healthCacheWindowMs(500, 200)).toBe(100);
    expect(healthCacheWindowMs(500, 100)).toBe(50);
    expect(healthCacheWindowMs(0, 1000)).toBe(0);
  });

  it('reports a probe that throws or returns nonsense as fail, with the reason', async () => {
    const health = new HealthService({ serviceId: 'eu-west' });
    health.add(
      customCheckpoint('throws', 'app', () => {
        throw new Error('sync failure');
      }),
    );
    health.add(customCheckpoint('nonsense', 'cnc', async () => ({ status: 'ok' }) as unknown as ProbeResult));
    const report = await health.check();
    expect(report.checks['app:responseTime']?.[0]).toMatchObject({ status: 'fail', output: 'sync failure' });
    expect(report.checks['cnc:responseTime']?.[0]).toMatchObject({
      status: 'fail',
      output: 'the checkpoint returned an invalid result',
    });
  });

  it('lets configuration decide what is critical, per component or per checkpoint', async () => {
    const failing = async (): Promise<void> => {
      throw new Error('down');
    };
    const onlyBroker = new HealthService({ serviceId: 'eu-west', critical: ['broker'] });
    onlyBroker.add(customCheckpoint('analytics', 'analytics', failing));
    expect((await onlyBroker.check()).status).toBe('warn');
    onlyBroker.add(customCheckpoint('reports', 'analytics', failing, { critical: true }));
    const report = await onlyBroker.check();
    expect(report.status).toBe('fail');
    expect(report.checks['analytics:responseTime']?.map((e) => [e.componentId, e.critical])).toEqual([
      ['analytics', false],
      ['reports', true],
    ]);
  });

  it('refuses bad and duplicate checkpoints with stable codes', async () => {
    const health = new HealthService({ serviceId: 'eu-west' });
    health.add(customCheckpoint('events', 'events', async () => {}));
    expect(() => health.add(customCheckpoint('events', 'events', async () => {}))).toThrow(
      DuplicateCheckpointError,
    );
    try {
      health.add(customCheckpoint('Bad Name', 'nope' as never, async () => {}, { measurement: 'a:b' }));
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidCheckpointError);
      const e = error as InvalidCheckpointError;
      expect(e.code).toBe('IOTDR_HEALTH_INVALID_CHECKPOINT');
      expect(e.issues.map((i) => i.path).sort()).toEqual(['component', 'measurement', 'name']);
    }
    await expect(health.checkOne('missing')).rejects.toBeInstanceOf(UnknownCheckpointError);
    expect(() => new HealthService({ serviceId: '', timeoutMs: 0 })).toThrow(InvalidCheckpointError);
  });
});

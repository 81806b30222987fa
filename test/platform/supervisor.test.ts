/**
 * The supervisor's timing, driven by a fake clock and timers: when a dead process is started
 * again, how the delay grows with a crash loop and falls back after a stable run, and what it
 * leaves alone (a process killed on purpose, `restart: never`, a stopped platform).
 */
import { describe, expect, it } from 'vitest';
import type { Clock, Timers } from '../../src/common/index.js';
import type { SupervisionConfig } from '../../src/config/index.js';
import { type ProcessEvent, Supervisor } from '../../src/processes/index.js';

/** Time that moves only when the test says so. */
class FakeTime implements Clock, Timers {
  #now = 0;
  #next = 0;
  readonly #due = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#due.set(id, { at: this.#now + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#due.delete(handle as number);
  }

  /** Moves time on by `ms`, firing every timer that falls due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      const [id, timer] = [...this.#due].sort(([, a], [, b]) => a.at - b.at)[0] ?? [];
      if (id === undefined || !timer || timer.at > end) break;
      this.#due.delete(id);
      this.#now = timer.at;
      timer.callback();
      // Lets the start the timer made settle before the next timer.
      await new Promise((r) => setImmediate(r));
    }
    this.#now = end;
  }

  get pending(): number {
    return this.#due.size;
  }
}

const POLICY: SupervisionConfig = {
  restart: 'always',
  restartDelayMs: 10_000,
  restartMaxDelayMs: 45_000,
  stableMs: 60_000,
};

/** A supervisor over fake time whose starts succeed unless `failNext` says otherwise. */
function harness(policy: SupervisionConfig = POLICY) {
  const time = new FakeTime();
  const events: ProcessEvent[] = [];
  const starts: { name: string; at: number }[] = [];
  const outcome = { failNext: 0, hold: false };
  const held: Array<() => void> = [];
  const supervisor = new Supervisor({
    policy,
    clock: time,
    timers: time,
    onEvent: (event) => events.push(event),
    start: (name) => {
      starts.push({ name, at: time.now() });
      if (outcome.failNext > 0) {
        outcome.failNext--;
        return Promise.reject(new Error('exited (code 1) before answering'));
      }
      if (outcome.hold) return new Promise<void>((resolve) => held.push(resolve));
      return Promise.resolve();
    },
  });
  return { time, events, starts, outcome, held, supervisor };
}

describe('Supervisor', () => {
  it('starts a dead process again after restartDelayMs, not before, and says so', async () => {
    const { time, events, starts, supervisor } = harness();
    supervisor.running('us-east');
    supervisor.running('us-west');
    await time.advance(5000);
    supervisor.exited('us-east', null, 'SIGKILL');
    expect(events).toEqual([
      { type: 'exited', name: 'us-east', code: null, signal: 'SIGKILL', restartInMs: 10_000 },
    ]);
    await time.advance(9999);
    expect(starts).toEqual([]);
    await time.advance(1);
    expect(starts).toEqual([{ name: 'us-east', at: 15_000 }]);
    expect(events.at(-1)).toEqual({ type: 'restarted', name: 'us-east' });
  });

  it('doubles the delay with each crash in a row, up to restartMaxDelayMs', async () => {
    const { time, events, supervisor } = harness();
    supervisor.running('control');
    const delays: (number | null)[] = [];
    for (let i = 0; i < 4; i++) {
      supervisor.exited('control', 1, null);
      const exited = events.at(-1);
      if (exited?.type !== 'exited') throw new Error(`expected an exit, got ${JSON.stringify(exited)}`);
      delays.push(exited.restartInMs);
      await time.advance(exited.restartInMs ?? 0);
      expect(events.at(-1)).toEqual({ type: 'restarted', name: 'control' });
      // Crashes again soon after each restart: a crash loop.
      await time.advance(1000);
    }
    expect(delays).toEqual([10_000, 20_000, 40_000, 45_000]);
  });

  it('counts a restart that does not come up as another crash, and tries again later', async () => {
    const { time, events, starts, outcome, supervisor } = harness();
    supervisor.running('analytics');
    outcome.failNext = 2;
    supervisor.exited('analytics', 1, null);
    await time.advance(10_000);
    expect(events.at(-1)).toMatchObject({ type: 'restart-failed', name: 'analytics', restartInMs: 20_000 });
    expect((events.at(-1) as { error: Error }).error.message).toContain('before answering');
    await time.advance(20_000);
    expect(events.at(-1)).toMatchObject({ type: 'restart-failed', restartInMs: 40_000 });
    await time.advance(40_000);
    expect(events.at(-1)).toEqual({ type: 'restarted', name: 'analytics' });
    expect(starts.map((s) => s.at)).toEqual([10_000, 30_000, 70_000]);
  });

  it('goes back to the first delay once a process has run stableMs since its last start', async () => {
    const { time, events, supervisor } = harness();
    supervisor.running('us-east');
    supervisor.exited('us-east', null, 'SIGKILL');
    await time.advance(10_000);
    supervisor.exited('us-east', null, 'SIGKILL');
    expect(events.at(-1)).toMatchObject({ type: 'exited', restartInMs: 20_000 });
    await time.advance(20_000);
    // Up a minute this time: the next crash is a new incident.
    await time.advance(60_000);
    supervisor.exited('us-east', null, 'SIGKILL');
    expect(events.at(-1)).toMatchObject({ type: 'exited', restartInMs: 10_000 });
  });

  it('leaves a process killed on purpose down, even with a restart pending', async () => {
    const { time, events, starts, supervisor } = harness();
    supervisor.running('us-east');
    supervisor.exited('us-east', null, 'SIGKILL');
    // The drill's region-crash: killed through the platform, brought back by the drill itself.
    supervisor.release('us-east');
    await time.advance(600_000);
    expect(starts).toEqual([]);
    expect(time.pending).toBe(0);
    supervisor.running('us-east');
    supervisor.exited('us-east', 1, null);
    expect(events.at(-1)).toMatchObject({ type: 'exited', restartInMs: 20_000 });
  });

  it('ignores a restart under way once the process is taken out of its hands', async () => {
    const { time, events, held, outcome, supervisor } = harness();
    outcome.hold = true;
    supervisor.running('us-east');
    supervisor.exited('us-east', null, 'SIGKILL');
    await time.advance(10_000);
    expect(held).toHaveLength(1);
    supervisor.release('us-east');
    held[0]?.();
    await new Promise((r) => setImmediate(r));
    expect(events.map((e) => e.type)).toEqual(['exited']);
  });

  it('with restart: never, reports the death and restarts nothing, the others untouched', async () => {
    const { time, events, starts, supervisor } = harness({ ...POLICY, restart: 'never' });
    for (const name of ['us-east', 'us-west', 'control']) supervisor.running(name);
    supervisor.exited('us-east', null, 'SIGKILL');
    expect(events).toEqual([
      { type: 'exited', name: 'us-east', code: null, signal: 'SIGKILL', restartInMs: null },
    ]);
    await time.advance(3_600_000);
    expect(starts).toEqual([]);
    expect(time.pending).toBe(0);
    expect(events).toHaveLength(1);
  });

  it('once stopped, cancels pending restarts and reports no more exits', async () => {
    const { time, events, starts, supervisor } = harness();
    supervisor.running('us-east');
    supervisor.running('control');
    supervisor.exited('us-east', null, 'SIGKILL');
    supervisor.stop();
    expect(time.pending).toBe(0);
    // A Ctrl-C reaches the children too: their exits are the shutdown.
    supervisor.exited('control', 0, null);
    await time.advance(600_000);
    expect(starts).toEqual([]);
    expect(events).toHaveLength(1);
  });
});

/**
 * The controller's decisions with injected time and scripted observations, on a real SQLite
 * state file: thresholds, quorum, routing controls, failback, no healthy region, restart.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  Decision,
  FailoverController,
  FailoverStore,
  StepRecorder,
  SwitchActions,
  SwitchEvent,
} from '../../src/failover/index.js';
import { controllerAt, ManualClock, observation, tempDir } from './support.js';

const STEP = 1000;

describe('the failover controller', () => {
  let dir: { dir: string; remove(): Promise<void> };
  let clock: ManualClock;
  let file: string;
  const open: FailoverStore[] = [];

  beforeEach(async () => {
    dir = await tempDir();
    file = join(dir.dir, 'failover.db');
    clock = new ManualClock();
  });
  afterEach(async () => {
    for (const s of open.splice(0)) s.close();
    await dir.remove();
  });

  async function make(options: Parameters<typeof controllerAt>[2] = {}): Promise<FailoverController> {
    const { controller, store } = controllerAt(file, clock, options);
    open.push(store);
    await controller.start();
    return controller;
  }

  type Result = boolean | 'slow';

  /** One probe round: each checker reports each region's result, then time moves one interval. */
  async function round(
    controller: FailoverController,
    results: Record<string, Record<string, Result>>,
  ): Promise<void> {
    for (const [checker, regions] of Object.entries(results))
      for (const [region, result] of Object.entries(regions))
        await controller.report([
          observation(checker, region, result, clock.now(), result === 'slow' ? 1200 : 5),
        ]);
    clock.advance(STEP);
  }

  async function rounds(
    controller: FailoverController,
    n: number,
    results: Record<string, Record<string, Result>>,
  ): Promise<void> {
    for (let i = 0; i < n; i++) await round(controller, results);
  }

  const healthy = { control: { 'us-east': true, 'us-west': true } };
  const eastDown = { control: { 'us-east': false, 'us-west': true } };

  it('holds until every region has a verdict, then moves after failureThreshold failed probes', async () => {
    const c = await make();
    expect(c.state().mode).toEqual({ type: 'holding', since: clock.now() });
    expect(c.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 0, eventId: null });
    await rounds(c, 4, healthy);
    expect(c.state().mode.type).toBe('holding');
    await round(c, healthy);
    expect(c.state().mode.type).toBe('health');
    expect(c.state().regions.map((r) => r.status)).toEqual(['up', 'up']);

    const firstFailure = clock.now();
    await rounds(c, 2, eastDown);
    expect(c.decision().activeRegion).toBe('us-east');
    const crossing = clock.now();
    await round(c, eastDown);
    const d = c.decision();
    expect(d).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    const last = c.state().lastSwitch as SwitchEvent;
    expect(last).toMatchObject({
      from: 'us-east',
      to: 'us-west',
      epoch: 1,
      trigger: { type: 'health', region: 'us-east' },
    });
    expect(last.timings.firstFailedProbeAt).toBe(firstFailure);
    expect(last.timings.thresholdCrossedAt).toBe(crossing);
    expect(last.timings.decidedAt).toBe(crossing);
    // More failures change nothing.
    await rounds(c, 5, eastDown);
    expect(c.decision().epoch).toBe(1);
  });

  it('keeps a busy region: slow probes make it degraded, not down, until the degraded budget runs out', async () => {
    const c = await make({ degradedBudgetMs: 10_000 });
    await rounds(c, 5, healthy);
    const eastSlow = { control: { 'us-east': 'slow' as const, 'us-west': true } };
    const slowSince = clock.now();
    await rounds(c, 8, eastSlow);
    // Eight slow probes, far past failureThreshold: still the active region, shown degraded.
    expect(c.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
    const east = c.state().regions[0];
    expect(east?.status).toBe('up');
    expect(east?.degraded).toMatchObject({
      since: slowSince,
      budgetEndsAt: slowSince + 10_000,
      latencyMs: 1200,
    });
    expect(east?.checkers.control).toMatchObject({ outcome: 'slow', consecutiveFailures: 0, vote: 'none' });
    // One passing probe ends the streak: the budget starts again with the next slow one.
    await round(c, healthy);
    expect(c.state().regions[0]?.degraded).toBeNull();
    await rounds(c, 9, eastSlow);
    expect(c.decision().activeRegion).toBe('us-east');
    // The tenth slow second takes it past the budget (measured to the end of the latest probe).
    await round(c, eastSlow);
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    const health = (await c.events({ limit: 100, type: 'region-health' })).at(-1);
    expect(health).toMatchObject({
      region: 'us-east',
      to: 'down',
      cause: 'degraded',
      checkers: { control: { outcome: 'slow', vote: 'down', downBecause: 'degraded', latencyMs: 1200 } },
    });
  });

  it('counts failures between slow probes, and names the failing checkpoint and every checker in the log', async () => {
    const c = await make({ degradedBudgetMs: 60_000 });
    await rounds(c, 5, healthy);
    const firstFailure = clock.now();
    for (const result of [false, 'slow', false, 'slow'] as const)
      await round(c, { control: { 'us-east': result, 'us-west': true } });
    expect(c.decision().activeRegion).toBe('us-east');
    await round(c, eastDown);
    expect(c.decision().activeRegion).toBe('us-west');
    expect(c.state().lastSwitch?.timings.firstFailedProbeAt).toBe(firstFailure);
    const health = (await c.events({ limit: 100, type: 'region-health' })).at(-1);
    expect(health).toMatchObject({
      region: 'us-east',
      to: 'down',
      cause: 'failures',
      failingComponents: ['broker'],
      failing: [{ component: 'broker', check: 'broker:roundTrip', critical: true }],
      checkers: {
        control: { outcome: 'fail', consecutiveFailures: 3, vote: 'down', downBecause: 'failures' },
      },
    });
  });

  it('brings a region back only after recoveryThreshold good probes, and fails back only when told (manual)', async () => {
    const c = await make();
    await rounds(c, 5, healthy);
    await rounds(c, 3, eastDown);
    expect(c.decision().activeRegion).toBe('us-west');
    await rounds(c, 4, healthy);
    expect(c.state().regions[0]?.status).toBe('down');
    await round(c, healthy);
    expect(c.state().regions[0]?.status).toBe('up');
    await rounds(c, 100, healthy);
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    expect(c.state().failbackAvailable).toBe('us-east');

    const { switch: back } = await c.failbackNow({ reason: 'primary repaired', who: 'ops' });
    expect(back).toMatchObject({
      from: 'us-west',
      to: 'us-east',
      epoch: 2,
      trigger: { type: 'failback', who: 'ops', reason: 'primary repaired' },
    });
    expect(c.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 2 });
    await expect(c.failbackNow({ reason: 'again', who: 'ops' })).rejects.toThrow(
      expect.objectContaining({ code: 'IOTDR_FAILOVER_NO_FAILBACK_TARGET' }),
    );
  });

  it('fails back by itself after the stable period when failback is auto', async () => {
    const c = await make({ failback: 'auto', stablePeriodMs: 30_000 });
    await rounds(c, 5, healthy);
    await rounds(c, 3, eastDown);
    expect(c.decision().activeRegion).toBe('us-west');
    await rounds(c, 5, healthy);
    const upAt = c.state().regions[0]?.since as number;
    while (clock.now() - upAt < 30_000 - STEP) {
      await round(c, healthy);
      expect(c.decision().activeRegion).toBe('us-west');
    }
    await rounds(c, 2, healthy);
    expect(c.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 2 });
    expect(c.state().lastSwitch?.trigger).toEqual({ type: 'auto-failback', stableSinceAt: upAt });
  });

  it('does not move on one checker of three cut off from the primary, nor on a silent majority', async () => {
    const c = await make({ checkers: ['east', 'west', 'witness'], observationMaxAgeMs: 4000 });
    expect(c.quorum).toBe(2);
    const all = (east: boolean) => ({
      east: { 'us-east': true, 'us-west': true },
      west: { 'us-east': east, 'us-west': true },
      witness: { 'us-east': true, 'us-west': true },
    });
    await rounds(c, 5, all(true));
    await rounds(c, 20, all(false));
    expect(c.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
    const east = c.state().regions[0];
    expect(east?.status).toBe('up');
    expect(east?.checkers.west?.vote).toBe('down');

    // Two checkers go silent: the one left cannot make a quorum, whatever it sees.
    await rounds(c, 20, { west: { 'us-east': false, 'us-west': true } });
    expect(c.decision().activeRegion).toBe('us-east');
    expect(c.state().regions[0]?.checkers.east?.vote).toBe('none');

    // A second checker agrees: a quorum sees the primary down.
    await rounds(c, 3, {
      west: { 'us-east': false, 'us-west': true },
      witness: { 'us-east': false, 'us-west': true },
    });
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
  });

  it('keeps the last active region when no region is healthy, says so, and never flaps', async () => {
    const c = await make();
    const seen: string[] = [];
    c.onChange((events) => seen.push(...events.map((e) => e.type)));
    await rounds(c, 5, healthy);
    // The secondary fails first (nothing to do: it is not active), then the primary too.
    await rounds(c, 3, { control: { 'us-east': true, 'us-west': false } });
    expect(c.state().noHealthyRegion).toBe(false);
    await rounds(c, 10, { control: { 'us-east': false, 'us-west': false } });
    expect(c.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
    expect(c.state().noHealthyRegion).toBe(true);
    expect(seen.filter((t) => t === 'no-healthy-region')).toHaveLength(1);
    expect((await c.events({ limit: 100, type: 'no-healthy-region' }))[0]).toMatchObject({
      keeping: 'us-east',
    });
    // The secondary recovers first: the fleet moves there, once.
    await rounds(c, 5, { control: { 'us-east': false, 'us-west': true } });
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    expect(c.state().noHealthyRegion).toBe(false);
    expect(seen).toContain('healthy-region-again');
  });

  it('pins the active region by routing control, records who and why, and returns to health when cleared', async () => {
    const c = await make();
    await rounds(c, 5, healthy);
    const { switch: pinned, state } = await c.switchTo({
      to: 'us-west',
      reason: 'maintenance of us-east',
      who: 'alice',
    });
    expect(pinned).toMatchObject({
      to: 'us-west',
      epoch: 1,
      trigger: { type: 'manual', who: 'alice', reason: 'maintenance of us-east' },
    });
    expect(state.mode).toMatchObject({ type: 'override', override: { region: 'us-west', who: 'alice' } });
    // Health does not move a pinned fleet, even off a failing region.
    await rounds(c, 10, { control: { 'us-east': true, 'us-west': false } });
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });

    const cleared = await c.clearOverride({ reason: 'maintenance done', who: 'bob' });
    expect(cleared.switch).toMatchObject({
      from: 'us-west',
      to: 'us-east',
      epoch: 2,
      trigger: { type: 'health' },
    });
    expect(c.state().mode).toEqual({ type: 'health' });
    await expect(c.clearOverride({ reason: 'x', who: 'bob' })).rejects.toThrow(
      expect.objectContaining({ code: 'IOTDR_FAILOVER_NO_OVERRIDE' }),
    );
    await expect(c.switchTo({ to: 'eu-central', reason: 'x', who: 'bob' })).rejects.toThrow(
      expect.objectContaining({ code: 'IOTDR_FAILOVER_UNKNOWN_REGION', status: 404 }),
    );
    const types = (await c.events({ limit: 100 })).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['override-set', 'override-cleared', 'switch']));
    const set = (await c.events({ limit: 100, type: 'override-set' }))[0];
    expect(set).toMatchObject({ override: { who: 'alice', reason: 'maintenance of us-east' } });
  });

  it('refuses observations of unknown checkers and regions, and counts none of the report', async () => {
    const c = await make();
    await expect(
      c.report([
        observation('control', 'us-east', false, clock.now()),
        observation('intruder', 'us-east', false, clock.now()),
      ]),
    ).rejects.toThrow(expect.objectContaining({ code: 'IOTDR_FAILOVER_UNKNOWN_CHECKER' }));
    await expect(c.report([observation('control', 'mars', true, clock.now())])).rejects.toThrow(
      expect.objectContaining({ code: 'IOTDR_FAILOVER_UNKNOWN_OBSERVED_REGION' }),
    );
    expect(c.state().regions[0]?.checkers).toEqual({});
  });

  it('resumes the same decision after a restart and does not flap while it holds', async () => {
    let c = await make();
    await rounds(c, 5, healthy);
    await rounds(c, 3, eastDown);
    await rounds(c, 5, healthy);
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    const before = c.decision();
    open.pop()?.close(); // as after kill -9: nothing but the file survives

    c = await make({ failback: 'auto', stablePeriodMs: 0 });
    expect(c.decision()).toEqual(before);
    expect(c.state().mode.type).toBe('holding');
    // Only the primary has fresh verdicts: still holding, still us-west.
    await rounds(c, 10, { control: { 'us-east': true } });
    expect(c.decision()).toEqual(before);
    // A region whose checkers have seen only a few probes does not end the hold either.
    await rounds(c, 2, { control: { 'us-west': true } });
    expect(c.decision()).toEqual(before);
    expect(c.state().mode.type).toBe('holding');
    await rounds(c, 3, { control: { 'us-west': true } });
    // Now it decides with fresh quorum verdicts: auto failback with a zero stable period.
    expect(c.state().mode.type).toBe('health');
    expect(c.decision()).toMatchObject({ activeRegion: 'us-east', epoch: 2 });
    const epochs = (await c.events({ limit: 100, type: 'switch' })).map((e) => (e as SwitchEvent).epoch);
    expect(epochs).toEqual([1, 2]);
  });

  it('keeps the override and epoch across a restart', async () => {
    let c = await make();
    await c.switchTo({ to: 'us-west', reason: 'drill', who: 'alice' });
    open.pop()?.close();
    c = await make();
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    expect(c.state().mode).toMatchObject({
      type: 'override',
      override: { region: 'us-west', reason: 'drill' },
    });
  });

  it('runs the actions of each switch in order and records the time of every step on its event', async () => {
    const announced: Decision[] = [];
    const executed: number[] = [];
    const startedAt: number[] = [];
    const actions: SwitchActions = {
      async announce(decision) {
        announced.push(decision);
      },
      async execute(event: SwitchEvent, record: StepRecorder) {
        executed.push(event.epoch);
        startedAt.push(clock.now());
        clock.advance(7);
        record('dnsUpdated', { sinks: { 0: 'ok' } });
        clock.advance(11);
        record('noticesPublished', { 'us-east': { ok: true } });
        record('disconnectsRequested', { region: event.from }, clock.now() + 1);
      },
    };
    const c = await make({ actions });
    await c.start();
    expect(announced).toEqual([c.decision()]);
    await rounds(c, 5, healthy);
    await rounds(c, 3, eastDown);
    const decidedAt = c.decision().at;
    await c.idle();
    await c.switchTo({ to: 'us-east', reason: 'back', who: 'ops' });
    await c.stop();
    expect(executed).toEqual([1, 2]);
    const first = (await c.events({ limit: 100, type: 'switch' }))[0] as SwitchEvent;
    expect(first.timings.decidedAt).toBe(decidedAt);
    const executedAt = startedAt[0] as number;
    expect(first.timings.dnsUpdatedAt).toBe(executedAt + 7);
    expect(first.timings.noticesPublishedAt).toBe(executedAt + 18);
    expect(first.timings.disconnectsRequestedAt).toBe(executedAt + 19);
    expect(first.timings.webhooksCalledAt).toBeNull();
    expect(first.steps.noticesPublished).toEqual({ 'us-east': { ok: true } });
  });

  it('rejects inconsistent options', async () => {
    await expect(
      make({
        regions: [
          { name: 'a', priority: 1, url: 'http://x' },
          { name: 'b', priority: 1, url: 'http://y' },
        ],
      }),
    ).rejects.toThrow(expect.objectContaining({ code: 'IOTDR_FAILOVER_CONFIG_INVALID' }));
    await expect(make({ failureThreshold: 0 })).rejects.toThrow(
      expect.objectContaining({ code: 'IOTDR_FAILOVER_CONFIG_INVALID' }),
    );
  });
});

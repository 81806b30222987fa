/**
 * Finished commands and onboarding jobs are kept for their retention, then deleted by the region
 * that made them (with tombstones, so the deletes replicate); open ones and other regions' stay.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CNC_KIND,
  COMMAND_RETENTION_MS,
  type CommandBroker,
  CommandService,
} from '../../src/commands/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import { type RegistryService, SqliteStore } from '../../src/registry/index.js';

/** No device is ever connected here: commands stay pending until they time out. */
const offline: CommandBroker = {
  publish: async () => {},
  isConnected: () => false,
  onMessage: () => () => {},
  onSubscribe: () => () => {},
};

describe('retention of finished commands', () => {
  let dir: string;
  let store: SqliteStore;
  let now = Date.parse('2026-11-01T00:00:00Z');
  let commands: CommandService;
  let service: RegistryService;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'iotdr-retention-'));
    store = new SqliteStore({ path: join(dir, 'registry.db') });
    await store.init();
    const clock = { now: () => now };
    service = regionRegistryService({ store, region: 'us-east', clock });
    await service.init();
    await service.putThing('pump-1', {});
    commands = new CommandService({ service, broker: offline, clock, sweepMs: 20 });
    await commands.start();
  });

  afterEach(async () => {
    await commands.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('times out an unanswered command, keeps it for its retention, then deletes it with a tombstone', async () => {
    const old = await commands.issue('pump-1', { name: 'open', timeoutMs: 1000, maxAttempts: 1 }, 'ops');
    now += 2000;
    await new Promise((r) => setTimeout(r, 100));
    expect((await commands.get(old.commandId)).state).toBe('timed-out');
    const open = await commands.issue(
      'pump-1',
      { name: 'close', timeoutMs: 30 * 24 * 3600 * 1000, maxAttempts: 1 },
      'ops',
    );

    now += COMMAND_RETENTION_MS - 5000;
    expect(await commands.prune()).toBe(0);
    now += 10_000;
    expect(await commands.prune()).toBe(1);
    expect((await store.get(CNC_KIND.command, old.commandId, { includeDeleted: true }))?.deleted).toBe(true);
    expect((await commands.list('pump-1', 10)).map((c) => c.commandId)).toEqual([open.commandId]);
  });
});

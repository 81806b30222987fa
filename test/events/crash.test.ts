import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { SqliteEventBus } from '../../src/events/index.js';
import { tempDir } from './support.js';

let dir: string;
let removeDir: () => Promise<void>;
beforeEach(async () => {
  ({ dir, remove: removeDir } = await tempDir());
});
afterEach(async () => {
  await removeDir();
});

it('keeps every acknowledged append when the process is killed mid-stream', async () => {
  const path = join(dir, 'events.db');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./crash-writer.ts', import.meta.url)), path],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const acked = new Map<string, number>();
  let buffered = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [offset, id] = line.split(' ');
        if (id) acked.set(id, Number(offset));
      }
      if (acked.size >= 300) resolve();
    });
    void exited.then(() => reject(new Error(`writer exited early: ${stderr}`)));
  });
  child.kill('SIGKILL');
  await exited;

  const bus = await SqliteEventBus.open({ path, region: 'us-east' });
  try {
    const last = await bus.lastOffset();
    const events = [];
    for (let from = 1; from <= last; ) {
      const page = await bus.read({ from, limit: 1000 });
      events.push(...page.events);
      from = page.next;
    }
    // Gap-free from 1, and every acknowledged event at the offset it was acknowledged with.
    expect(events.map((e) => e.offset)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    const byId = new Map(events.map((e) => [e.id, e.offset]));
    for (const [id, offset] of acked) expect(byId.get(id), id).toBe(offset);
    expect(last).toBeGreaterThanOrEqual(acked.size);
  } finally {
    await bus.close();
  }
});

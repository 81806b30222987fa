/**
 * A controller killed with SIGKILL right after a switch: the next one resumes with the same
 * active region, epoch and routing control from the SQLite file.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { FailoverController, FailoverStore } from '../../src/failover/index.js';
import { idleTimers, REGIONS, tempDir } from './support.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await dir.remove();
});

it('survives kill -9 right after a switch', async () => {
  const file = join(dir.dir, 'failover.db');
  const script = join(dir.dir, 'switch.ts');
  const index = resolve('src/failover/index.ts');
  await writeFile(
    script,
    `import { FailoverController, FailoverStore } from ${JSON.stringify(index)};
const store = new FailoverStore(${JSON.stringify(file)});
const c = new FailoverController({ regions: ${JSON.stringify(REGIONS)}, checkers: ['control'], store });
void (async () => {
  await c.start();
  await c.switchTo({ to: 'us-west', reason: 'before the crash', who: 'ops' });
  process.stdout.write('switched\\n');
})();
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
    if (out.includes('switched')) child.kill('SIGKILL');
  });
  const [, signal] = await once(child, 'exit');
  expect(signal).toBe('SIGKILL');
  expect(out).toContain('switched');

  const store = new FailoverStore(file);
  try {
    const c = new FailoverController({ regions: REGIONS, checkers: ['control'], store, timers: idleTimers });
    await c.start();
    expect(c.decision()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    expect(c.state().mode).toMatchObject({
      type: 'override',
      override: { reason: 'before the crash', who: 'ops' },
    });
    expect(await c.events({ limit: 10, type: 'switch' })).toHaveLength(1);
  } finally {
    store.close();
  }
}, 30_000);

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetch } from '../harness/https.js';
import { startPostgres } from '../harness/postgres.js';
import { freePort, spawnIotdr, waitForHttp } from '../harness/process.js';

/**
 * Kills a region with SIGKILL in the middle of a stream of writes, restarts it, and checks that
 * every acknowledged write is there and that entities and change records match one to one.
 */
async function crashAndCheck(storeYaml: string): Promise<{ acked: number; inFlightAtKill: number }> {
  const home = await mkdtemp(join(tmpdir(), 'iotdr-crash-'));
  try {
    const port = await freePort();
    const configPath = join(home, 'iotdr.yaml');
    await writeFile(
      configPath,
      [
        'logging: { level: warn }',
        'regions:',
        '  - name: us-east',
        '    priority: 1',
        '    address: 127.0.0.1',
        `    api: { port: ${port} }`,
        '    mqtt: { port: 0 }',
        '    cnc: { port: 0 }',
        `    store: ${storeYaml}`,
        '',
      ].join('\n'),
    );
    const env = { IOTDR_HOME: home };
    // The API is HTTPS with a certificate from the state directory's CA, which the tests' fetch trusts.
    const base = `https://127.0.0.1:${port}`;
    const args = ['region', '--name', 'us-east', '--config', configPath];

    const first = spawnIotdr(args, env);
    await waitForHttp(`${base}/livez`, first).catch(async (error: unknown) => {
      first.child.kill('SIGKILL');
      await first.exited;
      throw error;
    });
    const token = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

    const acked = new Map<string, string>();
    let inFlight = 0;
    let inFlightAtKill = 0;
    let killed = false;
    const writer = async (w: number) => {
      for (let i = 0; !killed; i++) {
        const name = `crash-${w}-${i}`;
        const value = `v${i}`;
        inFlight++;
        try {
          const res = await fetch(`${base}/v1/things/${name}`, {
            method: 'PUT',
            headers,
            body: JSON.stringify({ attributes: { value } }),
          });
          if (res.status === 201) acked.set(name, value);
        } catch {
          return; // the connection died with the process
        } finally {
          inFlight--;
        }
      }
    };
    const writers = Array.from({ length: 16 }, (_, w) => writer(w));
    while (acked.size < 300) await new Promise((r) => setTimeout(r, 5));
    inFlightAtKill = inFlight;
    first.child.kill('SIGKILL');
    killed = true;
    await first.exited;
    await Promise.all(writers);

    const second = spawnIotdr(args, env);
    try {
      await waitForHttp(`${base}/livez`, second);
      const entities = new Map<string, { version: number; value: string | undefined }>();
      for (let cursor: string | undefined, first = true; first || cursor; first = false) {
        const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const page = (await (await fetch(`${base}/v1/things?limit=1000${q}`, { headers })).json()) as {
          items: Array<{ thingName: string; version: number; attributes: Record<string, string> }>;
          nextCursor?: string;
        };
        for (const t of page.items)
          entities.set(t.thingName, { version: t.version, value: t.attributes.value });
        cursor = page.nextCursor;
      }
      // Every acknowledged write survived, with its value.
      for (const [name, value] of acked) expect(entities.get(name)?.value, name).toBe(value);

      const changes: Array<{ seq: number; kind: string; key: string; version: number; after: unknown }> = [];
      for (let after = 0; ; ) {
        const page = (await (
          await fetch(`${base}/v1/changes?after=${after}&limit=10000`, { headers })
        ).json()) as {
          changes: typeof changes;
        };
        if (page.changes.length === 0) break;
        changes.push(...page.changes);
        after = page.changes[page.changes.length - 1]?.seq ?? after;
      }
      expect(changes.map((c) => c.seq)).toEqual(changes.map((_, i) => i + 1));
      const thingChanges = changes.filter((c) => c.kind === 'thing');
      // No change record without its entity, no entity without its change record.
      for (const c of thingChanges) expect(entities.get(c.key)?.version, c.key).toBe(c.version);
      const logged = new Set(thingChanges.map((c) => `${c.key}@${c.version}`));
      for (const [name, e] of entities) expect(logged.has(`${name}@${e.version}`), name).toBe(true);
      return { acked: acked.size, inFlightAtKill };
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

describe('SIGKILL during a stream of writes', () => {
  it('loses no acknowledged write on SQLite', async () => {
    const { acked, inFlightAtKill } = await crashAndCheck('{ engine: sqlite }');
    expect(acked).toBeGreaterThanOrEqual(300);
    expect(inFlightAtKill).toBeGreaterThan(0);
  }, 120_000);

  describe('on PostgreSQL', () => {
    let pg: Awaited<ReturnType<typeof startPostgres>>;
    beforeAll(async () => {
      pg = await startPostgres();
    }, 120_000);
    afterAll(async () => {
      if (pg && 'stop' in pg) await pg.stop();
    });

    it('loses no acknowledged write on PostgreSQL', async (ctx) => {
      if ('skipped' in pg) {
        console.warn(`skipping: ${pg.skipped}`);
        ctx.skip();
        return;
      }
      const { acked } = await crashAndCheck(`{ engine: postgres, url: "${pg.url}", schema: crash }`);
      expect(acked).toBeGreaterThanOrEqual(300);
    }, 120_000);
  });
});

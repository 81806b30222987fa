import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type Agent, createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { sendRequest } from '../../src/http/index.js';
import { loadOrCreateCa, type SiteId } from '../../src/pki/index.js';
import type { EntityRecord } from '../../src/registry/index.js';
import { type Engine, eventually } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { freePort, type IotdrProcess, spawnIotdr, waitForHttp } from '../harness/process.js';
import { siteAgentOf } from '../harness/region.js';
import {
  changeLog,
  differences,
  duplicates,
  entityView,
  inParallel,
  names,
  onEachEngine,
} from './support.js';

interface Pull {
  /** The cursor the puller asked from. */
  after: number;
  changes: number;
  /** Seq of the last change in the answer. */
  lastChange: number;
  arrivedAt: number;
  deliveredAt?: number;
}

/**
 * Stands between us-west and us-east's API, forwarding every request, and notes each pull of the
 * change feed: when us-west asked (and from which cursor) and when the answer was delivered. The
 * time between delivering a batch and the next pull is the time us-west spends applying it.
 *
 * The links are mutual TLS, so the tap holds what a man in the middle would need and an attacker
 * cannot get: a certificate naming region us-east from the platform's CA (`serve`), for us-west
 * to accept it, and us-west's own site certificate (`upstreamAgent`), for us-east to serve it.
 */
async function feedTap(
  upstream: string,
  port: number,
  serve: { cert: string; key: string },
  upstreamAgent: Agent,
) {
  const pulls: Pull[] = [];
  let onDelivered: ((pull: Pull) => void) | undefined;
  const server: Server = createServer(serve, (req, res) => {
    res.on('error', () => {});
    const url = new URL(req.url ?? '/', upstream);
    const pull: Pull | undefined =
      url.pathname === '/v1/changes'
        ? {
            after: Number(url.searchParams.get('after') ?? 0),
            changes: 0,
            lastChange: 0,
            arrivedAt: Date.now(),
          }
        : undefined;
    if (pull) pulls.push(pull);
    sendRequest(url.toString(), {
      method: req.method ?? 'GET',
      headers: req.headers.authorization ? { authorization: req.headers.authorization } : {},
      trust: upstreamAgent,
      signal: AbortSignal.timeout(30_000),
    })
      .then((answer) => {
        const text = answer.text;
        if (pull && answer.status === 200) {
          const page = JSON.parse(text) as { changes: Array<{ seq: number }> };
          pull.changes = page.changes.length;
          pull.lastChange = page.changes[page.changes.length - 1]?.seq ?? 0;
        }
        res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'application/json' });
        res.end(text, () => {
          if (!pull) return;
          pull.deliveredAt = Date.now();
          onDelivered?.(pull);
        });
      })
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    pulls,
    /** Called after each pull answer reached us-west. */
    onDelivered(fn: ((pull: Pull) => void) | undefined) {
      onDelivered = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let runs = 0;

/**
 * Two real region processes; us-west reaches us-east through a tap that sees its pulls. us-east
 * takes a few thousand writes while us-west is down. us-west comes back and works through the
 * backlog 250 changes a batch; it is killed with SIGKILL after it received a batch and before it
 * asked for the next one, i.e. while it applies that batch, then started again while us-east takes
 * more writes. It must resume exactly at the batch (or after it, if it had committed), and end
 * with every us-east change once, in us-east's order, and every entity as in us-east.
 */
async function killWhileApplying(engine: Engine): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'iotdr-repl-kill-'));
  const procs: IotdrProcess[] = [];
  const ports = { 'us-east': await freePort(), 'us-west': await freePort(), tap: await freePort() };
  // The platform's CA, made before the regions start (they find it in the state directory).
  const ca = await loadOrCreateCa(join(home, 'pki'));
  const east: SiteId = { kind: 'region', name: 'us-east' };
  const asEast = await ca.issueSiteCertificate({ site: east, dnsNames: [], ipAddresses: ['127.0.0.1'] });
  const asWest = await siteAgentOf(home, { kind: 'region', name: 'us-west' }, east);
  const tap = await feedTap(
    `https://127.0.0.1:${ports['us-east']}`,
    ports.tap,
    { cert: asEast.certificatePem, key: asEast.privateKeyPem },
    asWest,
  );
  try {
    const run = `${process.pid}_${++runs}`;
    const store = (name: string) =>
      engine.engine === 'sqlite'
        ? '{ engine: sqlite }'
        : `{ engine: postgres, url: "${engine.url}", schema: kill_${run}_${name.replace('-', '_')} }`;
    // The same regions for both; in us-west's file, us-east is at the tap's port.
    const config = async (file: string, eastPort: number) => {
      const regions: Array<[string, number]> = [
        ['us-east', eastPort],
        ['us-west', ports['us-west']],
      ];
      const path = join(home, file);
      await writeFile(
        path,
        [
          'logging: { level: warn }',
          'replication: { batchSize: 250, waitMs: 500, retryBaseMs: 20, retryMaxMs: 250 }',
          'regions:',
          ...regions.flatMap(([name, port], i) => [
            `  - name: ${name}`,
            `    priority: ${i + 1}`,
            '    address: 127.0.0.1',
            `    api: { port: ${port} }`,
            '    mqtt: { port: 0 }',
            '    cnc: { port: 0 }',
            `    store: ${store(name)}`,
          ]),
          '',
        ].join('\n'),
      );
      return path;
    };
    const configs = {
      'us-east': await config('east.yaml', ports['us-east']),
      'us-west': await config('west.yaml', ports.tap),
    };
    type Name = keyof typeof configs;
    const base = (name: Name) => `https://127.0.0.1:${ports[name]}`;
    const start = async (name: Name) => {
      const proc = spawnIotdr(['region', '--name', name, '--config', configs[name]], { IOTDR_HOME: home });
      procs.push(proc);
      await waitForHttp(`${base(name)}/livez`, proc);
      return proc;
    };
    const [, firstWest] = await Promise.all([start('us-east'), start('us-west')]);
    const admin = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
    const call = async (name: Name, method: string, path: string, body?: unknown, token = admin) => {
      const res = await fetch(`${base(name)}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    const westLink = async () => {
      const status = await call('us-west', 'GET', '/v1/replication/status');
      return status.body.links.find((l: { peer: string }) => l.peer === 'us-east');
    };
    await eventually(async () => (await westLink())?.state.type === 'tailing', 'us-west tailing us-east');

    // us-west goes away; us-east takes a few thousand changes meanwhile: creates, then updates.
    firstWest.child.kill('SIGKILL');
    await firstWest.exited;
    const created = names('load', 3000);
    await inParallel(created, 16, async (name, i) => {
      const res = await call('us-east', 'PUT', `/v1/things/${name}`, { attributes: { i: `${i}` } });
      if (res.status !== 201) throw new Error(`PUT ${name}: ${res.status}`);
    });
    const updated = created.filter((_, i) => i % 10 === 0);
    await inParallel(updated, 16, async (name) => {
      const res = await call('us-east', 'PUT', `/v1/things/${name}`, { attributes: { updated: 'yes' } });
      if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status}`);
    });

    // us-west comes back to the backlog. After two full batches (to learn how long it takes to
    // apply one), the next full batch is followed by SIGKILL halfway through that time, if
    // us-west has not asked for more by then; otherwise the next batch is tried, sooner.
    let killedIn: Pull | undefined;
    const secondWest = spawnIotdr(['region', '--name', 'us-west', '--config', configs['us-west']], {
      IOTDR_HOME: home,
    });
    procs.push(secondWest);
    const killed = new Promise<void>((resolve, reject) => {
      const full: Pull[] = [];
      let delay = -1;
      const timer = setTimeout(() => reject(new Error('no batch to kill us-west in')), 30_000);
      tap.onDelivered((pull) => {
        if (pull.changes < 250 || killedIn) return;
        full.push(pull);
        if (full.length <= 2) return;
        if (delay < 0) {
          const applying = full.slice(0, 2).map((p) => {
            const next = tap.pulls[tap.pulls.indexOf(p) + 1];
            return next && p.deliveredAt !== undefined ? next.arrivedAt - p.deliveredAt : 0;
          });
          delay = Math.floor(Math.max(...applying) / 2);
        }
        const pullsBefore = tap.pulls.length;
        setTimeout(() => {
          if (killedIn) return;
          if (tap.pulls.length !== pullsBefore) {
            delay = Math.floor(delay / 2); // it was done already: try the next batch sooner
            return;
          }
          secondWest.child.kill('SIGKILL');
          killedIn = pull;
          clearTimeout(timer);
          resolve();
        }, delay);
      });
    });
    await killed;
    tap.onDelivered(undefined);
    expect(await secondWest.exited).toBe('SIGKILL');
    const batch = killedIn as Pull;

    // Started again while us-east keeps taking writes.
    const restartedAt = Date.now();
    const more = names('load', 300, 3000);
    await Promise.all([
      start('us-west'),
      inParallel(more, 4, async (name, i) => {
        const res = await call('us-east', 'PUT', `/v1/things/${name}`, { attributes: { i: `${i}` } });
        if (res.status !== 201) throw new Error(`PUT ${name}: ${res.status}`);
      }),
    ]);
    // It resumed at the killed batch (not committed, so applied again from scratch) or right
    // after it (committed just before the kill): never earlier, never later.
    const resumed = () => tap.pulls.find((p) => p.arrivedAt >= restartedAt);
    await eventually(() => resumed() !== undefined, 'us-west to pull again');
    const resumedFrom = resumed()?.after;
    expect([batch.after, batch.lastChange]).toContain(resumedFrom);

    // Caught up: both regions serve the same snapshot (every entity, tombstones too).
    const snapshot = async (name: Name) => {
      const out = new Map<string, string>();
      let q = '';
      for (;;) {
        const res = await call(name, 'GET', `/v1/snapshot?limit=5000${q}`);
        expect(res.status).toBe(200);
        for (const e of res.body.entities as EntityRecord[]) out.set(`${e.kind}|${e.key}`, entityView(e));
        if (!res.body.next) return out;
        q = `&afterKind=${encodeURIComponent(res.body.next.kind)}&afterKey=${encodeURIComponent(res.body.next.key)}`;
      }
    };
    let diff: string[] = [];
    await eventually(
      async () => {
        const [east, west] = await Promise.all([snapshot('us-east'), snapshot('us-west')]);
        diff = differences(east, west);
        return diff.length === 0;
      },
      'us-west identical to us-east',
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}:\n  ${diff.join('\n  ')}`);
    });

    // Every us-east change exactly once in us-west's log, in us-east's order.
    const isLoad = (ch: { kind: string; key: string }) => ch.kind === 'thing' && ch.key.startsWith('load-');
    const eastLog = (await changeLog((p) => call('us-east', 'GET', p), 'us-east')).filter(isLoad);
    const westLog = (await changeLog((p) => call('us-west', 'GET', p), 'us-east')).filter(isLoad);
    expect(eastLog).toHaveLength(created.length + updated.length + more.length);
    expect(duplicates(westLog.map((ch) => ch.id))).toEqual([]);
    expect(westLog.map((ch) => ch.id)).toEqual(eastLog.map((ch) => ch.id));

    // The restarted link applied nothing twice (a change applied again would count as stale).
    const link = await westLink();
    expect(link).toMatchObject({ state: { type: 'tailing' }, stale: 0, deadLetters: 0 });
  } finally {
    tap.onDelivered(undefined);
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    await tap.close();
    asWest.destroy();
    await rm(home, { recursive: true, force: true });
  }
}

onEachEngine('a replicator killed with SIGKILL in the middle of a batch', (engine) => {
  it('resumes after restart with no change lost and none applied twice', async () => {
    await killWhileApplying(engine());
  }, 240_000);
});

/**
 * A DNS follower against the control API's real decision route (DecisionFeed behind
 * buildApi): it follows decisions by long poll, refuses one older than what it serves,
 * reports a refused token, and keeps its decision in a file it validates on start.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { BuiltinDnsProvider, DnsEngine, DnsFollower } from '../../src/dns/index.js';
import { DecisionFeed, decisionRoutes } from '../../src/failover/index.js';
import { buildApi, staticTokens } from '../../src/http/index.js';
import { eventually } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';

const TOKEN = 'reader-token-for-the-follower';
const ADDRESSES: Record<string, string> = { 'us-east': '127.0.0.11', 'us-west': '127.0.0.12' };

describe('DnsFollower', () => {
  let dir: string;
  let app: FastifyInstance;
  let feed: DecisionFeed;
  let controlUrl: string;
  const followers: DnsFollower[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-follower-'));
    feed = new DecisionFeed((region) => ADDRESSES[region] ?? '');
    app = await buildApi({
      openapi: { title: 'a control API', description: 'under test' },
      tokens: staticTokens([{ token: TOKEN, name: 'dns', role: 'reader' }]),
      logger: createLogger({ level: 'silent' }),
      routes: [decisionRoutes(feed)],
    });
    controlUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterEach(async () => {
    for (const f of followers.splice(0)) await f.stop();
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  function follower(options: { token?: string } = {}): { follower: DnsFollower; engine: DnsEngine } {
    const engine = new DnsEngine({
      state: { zone: 'iot.test', nameservers: [{ name: 'ns', address: '127.0.0.10' }] },
    });
    const f = new DnsFollower({
      name: 'ns-test',
      controlUrl,
      token: options.token ?? TOKEN,
      provider: new BuiltinDnsProvider({ engines: [engine] }),
      statePath: join(dir, 'ns-test.decision.json'),
      waitMs: 2000,
      retry: { baseMs: 20, capMs: 100 },
      logger: createLogger({ level: 'silent' }),
    });
    followers.push(f);
    return { follower: f, engine };
  }

  it('follows every decision as soon as it is made, by long poll', async () => {
    feed.apply({ activeRegion: 'us-east', epoch: 0, at: 1000, eventId: null });
    const { follower: f, engine } = follower();
    await f.start();
    await eventually(
      async () => engine.state.active?.epoch === 0 && f.health().status === 'pass',
      'epoch 0 served and confirmed',
    );
    await eventually(async () => feed.waiting === 1, 'the follower waiting for the next decision');

    feed.apply({ activeRegion: 'us-west', epoch: 1, at: 2000, eventId: 'e1' });
    await eventually(async () => engine.state.active?.region === 'us-west', 'us-west served');
    expect(engine.state.active).toEqual({ region: 'us-west', address: '127.0.0.12', epoch: 1 });
    expect(f.status()).toMatchObject({ controller: 'connected', lastError: null, restored: false });
  });

  it('refuses a decision older than the one it serves, keeps serving, and says why', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'ns-test.decision.json'),
      JSON.stringify({
        version: 1,
        decision: { region: 'us-west', address: '127.0.0.12', epoch: 5, decidedAt: 1000 },
      }),
    );
    feed.apply({ activeRegion: 'us-east', epoch: 2, at: 2000, eventId: 'old' });
    const { follower: f, engine } = follower();
    await f.start();
    expect(engine.state.active).toMatchObject({ region: 'us-west', epoch: 5 });
    await eventually(async () => f.status().lastError !== null, 'the refusal recorded');
    const health = f.health();
    expect(health.status).toBe('warn');
    expect(health.checks['control:reachability']?.[0]?.output).toMatch(
      /answers, but: .*us-east@2 is older than the served us-west@5; refused by fencing/,
    );
    expect(engine.state.active).toMatchObject({ region: 'us-west', epoch: 5 });
  });

  it('reports a refused token, and fails its health while it has nothing to serve', async () => {
    feed.apply({ activeRegion: 'us-east', epoch: 0, at: 1000, eventId: null });
    const { follower: f, engine } = follower({ token: 'not-a-token' });
    await f.start();
    await eventually(async () => f.status().lastError !== null, 'the refusal recorded');
    expect(f.status().lastError).toBe('HTTP 401 IOTDR_AUTH_INVALID_TOKEN');
    const health = f.health();
    expect(health.status).toBe('fail');
    expect(health.checks['dns:answers']?.[0]).toMatchObject({ status: 'fail', observedValue: null });
    expect(engine.state.active).toBeUndefined();
  });

  it('ignores a kept decision it cannot parse, and takes the controller’s', async () => {
    await writeFile(join(dir, 'ns-test.decision.json'), '{"version":1,"decision":{"region":"US EAST"}}');
    feed.apply({ activeRegion: 'us-east', epoch: 3, at: 1000, eventId: 'e3' });
    const { follower: f, engine } = follower();
    await f.start();
    expect(engine.state.active).toBeUndefined();
    await eventually(async () => engine.state.active?.epoch === 3, 'epoch 3 served');
  });

  it('answers 400 to a bad long-poll query and 503 before any decision', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const none = await fetch(`${controlUrl}/v1/failover/decision`, { headers: auth });
    expect(none.status).toBe(503);
    expect(await none.json()).toMatchObject({ code: 'IOTDR_FAILOVER_NO_DECISION' });
    const bad = await fetch(`${controlUrl}/v1/failover/decision?after=-1&wait=999999`, { headers: auth });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
  });
});

import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';

function capture(env: NodeJS.ProcessEnv, cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd };
  return { io, out, err };
}

/** Writes straight into a region's store, as a change first made in `origin`. */
async function writeDirect(
  region: ClusterRegion,
  name: string,
  version: number,
  origin: string,
  doc?: Record<string, unknown>,
) {
  const service = region.running?.service;
  if (!service) throw new Error(`${region.name} is not running`);
  const at = new Date().toISOString();
  await service.transaction((tx) =>
    tx.apply({
      changeId: randomUUID(),
      kind: 'thing',
      key: name,
      op: 'upsert',
      ref: null,
      doc: doc ?? { thingName: name, thingTypeName: null, attributes: {}, createdAt: at, updatedAt: at },
      version,
      hlc: { wall: Date.now(), counter: 0 },
      origin,
      at: Date.now(),
    }),
  );
}

/** A cluster and a configuration file naming its regions' real ports, for the CLI. */
async function cliCluster() {
  const c = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' });
  const configPath = join(c.stateDir, 'iotdr.yaml');
  // JSON is YAML.
  await writeFile(configPath, JSON.stringify(c.configYaml));
  const run = async (...args: string[]) => {
    const io = capture({ IOTDR_HOME: c.stateDir }, c.stateDir);
    const code = await main(['replication', ...args, '--config', configPath], io.io);
    return { code, out: io.out, err: io.err };
  };
  return {
    c,
    run,
    east: c.regions['us-east'] as ClusterRegion,
    west: c.regions['us-west'] as ClusterRegion,
  };
}

describe('iotdr replication status and diff', () => {
  let t: Awaited<ReturnType<typeof cliCluster>>;
  beforeAll(async () => {
    t = await cliCluster();
  });
  afterAll(async () => t?.c.close());

  it('shows each link of a region as a table, or as JSON', async () => {
    expect((await t.east.call('PUT', '/v1/things/a', {})).status).toBe(201);
    await eventually(async () => (await t.west.call('GET', '/v1/things/a')).status === 200, 'a in us-west');
    const shown = await t.run('status', '--region', 'us-west');
    expect(shown.code).toBe(0);
    expect(shown.out[0]).toBe('replication into us-west:');
    expect(shown.out[1]).toMatch(
      /^PEER\s+STATE\s+CURSOR\s+PEER SEQ\s+LAG\s+LAG TIME\s+LAST CONTACT\s+APPLIED\s+STALE\s+DEAD LETTERS\s+LAST ERROR$/,
    );
    expect(shown.out[2]).toMatch(
      /^us-east\s+tailing\s+\d+\s+\d+\s+\d+\s+\S+\s+[\d.]+m?s ago\s+[1-9]\d*\s+\d+\s+0\s+-$/,
    );
    expect(shown.out).toHaveLength(3);

    const json = await t.run('status', '--json');
    expect(json.code).toBe(0);
    const body = JSON.parse(json.out.join('\n'));
    expect(body.region).toBe('us-east');
    expect(body.links).toEqual([expect.objectContaining({ peer: 'us-west', deadLetters: 0 })]);
  });

  it('finds two converged regions identical, then lists exactly the keys that differ', async () => {
    for (const name of ['b', 'c', 'd'])
      expect((await t.west.call('PUT', `/v1/things/${name}`, {})).status).toBe(201);
    let same = await t.run('diff');
    await eventually(async () => {
      same = await t.run('diff');
      return same.code === 0;
    }, 'the regions to converge');
    expect(same.out[0]).toMatch(/^KIND\s+us-east\s+us-west\s+DIGEST$/);
    expect(same.out).toContainEqual(expect.stringMatching(/^thing\s+4\s+4\s+equal$/));
    expect(same.out.at(-1)).toMatch(/^us-east and us-west are identical: \d+ live entities$/);

    await writeDirect(t.east, 'extra', 1, 'elsewhere');
    await writeDirect(t.west, 'b', 2, 'elsewhere');
    const differ = await t.run('diff');
    expect(differ.code).toBe(1);
    expect(differ.out).toContainEqual(
      expect.stringMatching(/^thing\s+5\s+4\s+differs in [12] of 256 buckets$/),
    );
    const header = differ.out.findIndex((l) => /^KIND\s+KEY\s+us-east\s+us-west$/.test(l));
    expect(header).toBeGreaterThan(0);
    const rows = differ.out.slice(header + 1, differ.out.indexOf('', header));
    expect(rows).toHaveLength(2);
    expect(rows).toContainEqual(expect.stringMatching(/^thing\s+extra\s+v1 elsewhere \S+Z\s+missing$/));
    expect(rows).toContainEqual(expect.stringMatching(/^thing\s+b\s+v1 us-west \S+Z\s+v2 elsewhere \S+Z$/));
    expect(differ.out.at(-1)).toBe(
      'us-east and us-west differ: 2 keys (1 missing in us-west, 0 missing in us-east, 1 written differently)',
    );

    const reversed = await t.run('diff', '--from', 'us-west', '--to', 'us-east', '--json');
    expect(reversed.code).toBe(1);
    const body = JSON.parse(reversed.out.join('\n'));
    expect(body).toMatchObject({ from: 'us-west', to: 'us-east', identical: false, truncated: false });
    expect(
      body.differences.map((d: { key: string; from: unknown; to: { version: number } | null }) => [
        d.key,
        d.from === null,
        d.to?.version,
      ]),
    ).toEqual([
      ['b', false, 1],
      ['extra', true, 1],
    ]);

    const limited = await t.run('diff', '--limit', '1');
    expect(limited.code).toBe(1);
    expect(limited.out.at(-1)).toBe('listing stopped at 1 keys; --limit 0 lists them all');
  });

  it('exits 2 on a usage error', async () => {
    const cases: Array<[string[], string]> = [
      [['diff', '--from', 'us-east', '--to', 'us-east'], '--from and --to are both us-east'],
      [['diff', '--from', 'eu-central'], "no region named 'eu-central'; configured: us-east, us-west"],
      [['diff', '--region', 'us-east'], 'diff takes --from and --to, not --region'],
      [['diff', '--limit', 'many'], "--limit is a whole number ≥ 0, not 'many'"],
      [['dead-letters', 'retry', 'us-west'], 'dead-letters retry needs PEER and ID'],
      [['dead-letters', 'show'], 'dead-letters show needs PEER and ID'],
      [['rebalance'], "unknown subcommand 'rebalance'"],
      [[], 'a subcommand is required'],
    ];
    for (const [args, message] of cases) {
      const r = await t.run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err[0]).toBe(`iotdr replication: ${message}`);
    }
  });

  it('shows a link that cannot reach its peer, and cannot compare with a region that is down', async () => {
    await t.west.stop();
    await eventually(async () => {
      const r = await t.run('status');
      return /retrying \(attempt \d+, next in/.test(r.out[2] ?? '');
    }, 'the link to retry');
    const r = await t.run('status');
    expect(r.out[2]).toMatch(/\s\S.* \([\d.]+m?s ago\)$/);
    const diff = await t.run('diff');
    expect(diff.code).toBe(2);
    expect(diff.err.join('\n')).toContain('cannot reach us-west');
    expect(diff.err.join('\n')).toContain('IOTDR_CLI_UNREACHABLE');
  });
});

describe('iotdr replication dead-letters', () => {
  let t: Awaited<ReturnType<typeof cliCluster>>;
  beforeAll(async () => {
    t = await cliCluster();
  });
  afterAll(async () => t?.c.close());

  it('lists, retries and discards a change that cannot be applied', async () => {
    // us-east logs a thing whose document lacks its timestamps: us-west cannot apply it.
    await writeDirect(t.east, 'broken', 1, 'us-east', {
      thingName: 'broken',
      thingTypeName: null,
      attributes: {},
    });
    let listed = await t.run('dead-letters', 'list', '--region', 'us-west');
    await eventually(async () => {
      listed = await t.run('dead-letters', 'list', '--region', 'us-west');
      return listed.out.length > 1;
    }, 'a dead letter');
    expect(listed.code).toBe(0);
    expect(listed.out[0]).toMatch(/^PEER\s+ID\s+KIND\s+KEY\s+OP\s+ORIGIN\s+AT\s+ATTEMPTS\s+REASON$/);
    expect(listed.out[1]).toMatch(
      // Its id is its seq in us-east's log, or its snapshot key when us-west was still copying.
      /^us-east\s+(\d{16}|snapshot:thing\|broken)\s+thing\s+broken\s+upsert\s+us-east\s+\S+Z\s+0\s+invalid thing document: createdAt: /,
    );
    const id = (listed.out[1] ?? '').split(/\s+/)[1] ?? '';

    const status = await t.run('status', '--region', 'us-west');
    expect(status.out[2]).toMatch(/\s1\s+-$/);

    const retried = await t.run('dead-letters', 'retry', 'us-east', id, '--region', 'us-west');
    expect(retried.code).toBe(1);
    expect(retried.err[0]).toContain(`dead letter ${id} from us-east still cannot be applied in us-west`);
    const json = JSON.parse(
      (await t.run('dead-letters', 'list', '--region', 'us-west', '--json')).out.join('\n'),
    );
    expect(json).toEqual([
      expect.objectContaining({ id, peer: 'us-east', kind: 'thing', key: 'broken', attempts: 1 }),
    ]);
    // The list carries no document; show gives the whole change (the CLI calls with the admin token).
    expect(json[0].change).toBeUndefined();
    const shown = await t.run('dead-letters', 'show', 'us-east', id, '--region', 'us-west');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.out.join('\n'))).toMatchObject({
      id,
      peer: 'us-east',
      change: { kind: 'thing', key: 'broken', after: { thingName: 'broken' } },
    });

    const discarded = await t.run('dead-letters', 'discard', 'us-east', id, '--region', 'us-west');
    expect(discarded).toMatchObject({
      code: 0,
      out: [`dead letter ${id} from us-east discarded in us-west`],
    });
    expect((await t.run('dead-letters', 'list', '--region', 'us-west')).out).toEqual([
      'no dead letters in us-west',
    ]);

    const again = await t.run('dead-letters', 'discard', 'us-east', id, '--region', 'us-west');
    expect(again.code).toBe(1);
    expect(again.err[0]).toContain('IOTDR_REPLICATION_DEAD_LETTER_NOT_FOUND');
  });
});

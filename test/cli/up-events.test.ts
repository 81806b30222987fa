/**
 * `iotdr up --events jetstream`: the configuration it writes (events.engine jetstream, a NATS
 * server nats-1 on the region's address), that server run as a supervised process before the
 * region, endpoints.json and the printed table naming its URL, the region's site certificate
 * appending to the region's stream there, and Ctrl-C stopping it with the rest. The flags' misuses
 * are usage errors.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { waitUntil } from '../../src/common/index.js';
import { siteCertificatePaths } from '../../src/config/index.js';
import { JetStreamEventBus } from '../../src/events/index.js';
import { natsSkipReason } from '../harness/nats.js';
import { freePorts, type IotdrProcess, killGroup, ROOT, spawnIotdr } from '../harness/process.js';

const skip = natsSkipReason();
const REGION = '127.0.0.83';
const NATS_URL = `tls://${REGION}:4222`;

/** The command lines of a process group's members other than its leader, from /proc. */
function groupMembers(pgid: number): string[] {
  const members: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === pgid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid)
        members.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' '));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

const homes: string[] = [];
let up: IotdrProcess | undefined;
afterEach(async () => {
  if (up) killGroup(up);
  up = undefined;
  for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
});

/** A configuration file of one region on its own address, analytics on a free port, and `more`. */
async function configFile(more: Record<string, unknown> = {}): Promise<{ home: string; file: string }> {
  const home = await mkdtemp(join(tmpdir(), 'iotdr-up-events-'));
  homes.push(home);
  const [api] = await freePorts(1, REGION);
  const [analytics] = await freePorts(1);
  const yaml = {
    regions: [
      {
        name: 'us-east',
        priority: 1,
        address: REGION,
        api: { port: api },
        cnc: { port: 0 },
        mqtt: { port: 0 },
      },
    ],
    analytics: { address: '127.0.0.1', port: analytics },
    ...more,
  };
  const file = join(home, 'iotdr.yaml');
  await writeFile(file, JSON.stringify(yaml));
  return { home, file };
}

async function cli(home: string, ...args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const io: CliIo = { out: () => {}, err: (l) => err.push(l), env: { IOTDR_HOME: home }, cwd: home };
  return { code: await main(args, io), err: err.join('\n') };
}

describe('iotdr up --events', () => {
  it('takes jetstream only, --nats-servers 1 or 3 only with it, and refuses a configuration on JetStream already', async () => {
    const { home, file } = await configFile();
    const cases: [string[], string][] = [
      [['--events', 'sqlite'], '--events: jetstream'],
      [['--nats-servers', '3'], '--nats-servers: only with --events jetstream'],
      [['--events', 'jetstream', '--nats-servers', '2'], '--nats-servers: 1 or 3'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(home, 'up', ...args, '--config', file);
      expect(r.code).toBe(2);
      expect(r.err).toContain(message);
    }
    const [clientPort, clusterPort] = await freePorts(2, REGION);
    const { home: other, file: onJetStream } = await configFile({ events: { engine: 'jetstream' } });
    const raw = JSON.parse(await readFile(onJetStream, 'utf8'));
    raw.regions[0].nats = { servers: [{ name: 'n1', address: REGION, clientPort, clusterPort }] };
    await writeFile(onJetStream, JSON.stringify(raw));
    const r = await cli(other, 'up', '--events', 'jetstream', '--config', onJetStream);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--events: ${onJetStream} sets events.engine jetstream already`);
  });

  it.skipIf(skip !== undefined)(
    "runs the region's NATS before the region, lists it, lets the region append there, and stops it on Ctrl-C",
    async () => {
      const { home, file } = await configFile();
      const proc = spawnIotdr(
        ['up', '--events', 'jetstream', '--fleet', '0', '--config', file],
        { IOTDR_HOME: home },
        ROOT,
        {
          group: true,
        },
      );
      up = proc;
      await waitUntil(
        () => {
          if (proc.child.exitCode !== null) throw new Error(`iotdr up exited:\n${proc.output()}`);
          return proc.output().includes('iotdr is up');
        },
        {
          timeoutMs: 90_000,
          what: 'iotdr up to start',
          fatal: () => true,
          timeoutError: (m) => new Error(`${m}\n${proc.output()}`),
        },
      );
      const generated = join(home, 'iotdr.events.yaml');
      const output = proc.output();
      expect(output).toContain(`with JetStream on 1 NATS server per region (${generated})`);
      // Ready before the region: its line comes first.
      expect(output).toMatch(
        new RegExp(`nats us-east/nats-1\\s+${NATS_URL.replaceAll('.', '\\.')}[^]*region us-east`),
      );
      expect(output).toMatch(new RegExp(`NATS us-east\\s+${NATS_URL.replaceAll('.', '\\.')}`));
      expect(JSON.parse(await readFile(generated, 'utf8'))).toMatchObject({
        events: { engine: 'jetstream' },
        regions: [
          {
            name: 'us-east',
            nats: { servers: [{ name: 'nats-1', address: REGION, clientPort: 4222, clusterPort: 6222 }] },
          },
        ],
      });
      const endpoints = JSON.parse(await readFile(join(home, 'endpoints.json'), 'utf8'));
      expect(endpoints.regions['us-east'].nats).toEqual([NATS_URL]);

      // The region's own certificate, as the region made it.
      const paths = siteCertificatePaths(home, { kind: 'region', name: 'us-east' });
      const bus = await JetStreamEventBus.open({
        region: 'us-east',
        nats: {
          servers: [NATS_URL],
          name: 'test region',
          tls: {
            ca: await readFile(join(home, 'pki', 'ca.pem'), 'utf8'),
            cert: await readFile(paths.cert, 'utf8'),
            key: await readFile(paths.key, 'utf8'),
          },
        },
      });
      try {
        const result = await bus.append({
          id: 'up-events-1',
          time: Date.now(),
          source: { type: 'rule', rule: 'telemetry' },
          topic: 'dev/sensor-1/telemetry',
          payload: { type: 'json', value: { temp: 21.5 } },
        });
        expect(result.appended).toBe(true);
      } finally {
        await bus.close();
      }

      const pgid = proc.child.pid ?? 0;
      expect(groupMembers(pgid).filter((c) => c.includes('nats-server -c'))).toHaveLength(1);
      proc.child.kill('SIGINT');
      expect(await proc.exited).toBe(0);
      await waitUntil(() => groupMembers(pgid).length === 0, {
        timeoutMs: 10_000,
        what: 'every process iotdr up started to be gone',
      });
    },
    120_000,
  );
});

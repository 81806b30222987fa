/**
 * The network lab against real processes in its namespaces: a TCP echo server on each host, clients
 * started in others, and what a cut, a heal, an isolation and a teardown do to them.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { type LabHost, NetLab, netlabSkipReason } from '../harness/netlab.js';

const skip = netlabSkipReason();
if (skip) console.warn(`skipping the network lab tests: ${skip}`);

/** Every host has a port space of its own, so the same fixed port is free on each. */
const PORT = 7000;
/** How long a client waits for its answer before it says `timeout`, ms: the only fixed wait here. */
const DEADLINE_MS = 1000;
const REACH_TIMEOUT_MS = 10_000;

/** Answers each chunk with `<tag>:<chunk>`. argv: address, port, tag. */
const ECHO_SERVER = `
const [address, port, tag] = process.argv.slice(1);
require('node:net')
  .createServer((socket) => socket.on('data', (d) => socket.write(tag + ':' + d)))
  .listen(Number(port), address, () => console.log('listening'));`;

/** Sends `ping`, prints `answer <reply>`, `timeout` or `error <code>`. argv: address, port, deadline. */
const CLIENT = `
const [address, port, deadline] = process.argv.slice(1);
const say = (line) => { console.log(line); process.exit(0); };
setTimeout(() => say('timeout'), Number(deadline));
const socket = require('node:net').connect(Number(port), address, () => socket.write('ping'));
socket.on('data', (d) => say('answer ' + d));
socket.on('error', (e) => say('error ' + e.code));`;

/** One connection for its whole life: each stdin line goes out on it, each reply is printed. */
const LONG_CLIENT = `
const [address, port] = process.argv.slice(1);
const socket = require('node:net').connect(Number(port), address, () => console.log('connected'));
socket.on('data', (d) => console.log('answer ' + d));
socket.on('error', (e) => { console.log('error ' + e.code); process.exit(1); });
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => socket.write(l));`;

function collect(child: ChildProcess): () => string {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return () => out;
}

async function startEcho(lab: NetLab, host: LabHost, tag: string): Promise<void> {
  const server = lab.spawn(host, process.execPath, ['-e', ECHO_SERVER, host.address, String(PORT), tag], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const out = collect(server);
  await waitUntil(() => out().includes('listening'), {
    timeoutMs: REACH_TIMEOUT_MS,
    what: `the echo server on ${host.name}`,
  });
}

/** One try from `from` to the echo server at `address`: what the client printed. */
async function ask(lab: NetLab, from: LabHost, address: string): Promise<string> {
  const result = await lab.run(from, process.execPath, [
    '-e',
    CLIENT,
    address,
    String(PORT),
    String(DEADLINE_MS),
  ]);
  return result.stdout.trim();
}

/** Waits until `from` gets the answer of `to`'s echo server (started with `tag`). */
async function reaches(lab: NetLab, from: LabHost, to: LabHost, tag = to.name): Promise<void> {
  let last = '';
  await waitUntil(
    async () => {
      last = await ask(lab, from, to.address);
      return last === `answer ${tag}:ping`;
    },
    { timeoutMs: REACH_TIMEOUT_MS, what: `${from.name} to reach ${to.name}`, status: () => last },
  );
}

/** `from` gets no answer at all from `to` (no reply, no refusal) within the deadline. */
async function unanswered(lab: NetLab, from: LabHost, to: LabHost): Promise<void> {
  expect(await ask(lab, from, to.address), `${from.name} to ${to.name}`).toBe('timeout');
}

/** The namespaces whose names are the lab's or start with it. */
function namespacesOf(name: string): string[] {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  return listed
    .split('\n')
    .map((line) => line.trim().split(' ')[0] ?? '')
    .filter((ns) => ns === name || ns.startsWith(`${name}-`));
}

/** Whether `pid` has ended: gone, or a zombie its parent has not reaped yet. */
function ended(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

describe.skipIf(skip !== undefined)('NetLab', () => {
  describe('three hosts', () => {
    let lab: NetLab;
    let a: LabHost;
    let b: LabHost;
    let c: LabHost;

    beforeAll(async () => {
      lab = await NetLab.create();
      a = await lab.addHost('us-east');
      b = await lab.addHost('eu-west');
      c = await lab.addHost('ctl-a');
      for (const host of [a, b, c]) await startEcho(lab, host, host.name);
    });
    afterEach(async () => {
      await lab?.healAll();
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('gives each host its own namespace and an address on the lab subnet', () => {
      expect([a, b, c].map((h) => h.address)).toEqual(['10.77.0.1', '10.77.0.2', '10.77.0.3']);
      expect(lab.name).toMatch(new RegExp(`^iotdr-${process.pid}-\\d+$`));
      expect(a.ns).toBe(`${lab.name}-us-east`);
      expect(namespacesOf(lab.name).sort()).toEqual([lab.name, a.ns, b.ns, c.ns].sort());
    });

    it('cut drops everything between two hosts, both ways, silently; heal restores it', async () => {
      await reaches(lab, b, a);
      await reaches(lab, c, a);
      await lab.cut(a, b);
      await lab.cut(b, a);
      await Promise.all([unanswered(lab, b, a), unanswered(lab, a, b)]);
      await reaches(lab, c, a);
      await reaches(lab, c, b);
      // Cut twice, healed once: healed.
      await lab.heal(a, b);
      await reaches(lab, b, a);
      await reaches(lab, a, b);
    });

    it('stalls an open connection during a cut, which carries on after heal', async () => {
      const client = lab.spawn(b, process.execPath, ['-e', LONG_CLIENT, a.address, String(PORT)], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const out = collect(client);
      try {
        await waitUntil(() => out().includes('connected'), {
          timeoutMs: REACH_TIMEOUT_MS,
          what: 'connected',
        });
        client.stdin?.write('one\n');
        await waitUntil(() => out().includes(`answer ${a.name}:one`), {
          timeoutMs: REACH_TIMEOUT_MS,
          what: 'the answer to one',
        });
        await lab.cut(a, b);
        client.stdin?.write('two\n');
        await expect(
          waitUntil(() => out().includes(`answer ${a.name}:two`), { timeoutMs: DEADLINE_MS, what: 'two' }),
        ).rejects.toThrow(/timed out/);
        await lab.heal(a, b);
        // TCP sends `two` again by itself; the connection was never reset.
        await waitUntil(() => out().includes(`answer ${a.name}:two`), {
          timeoutMs: REACH_TIMEOUT_MS,
          what: 'the answer to two after heal',
        });
        expect(out()).not.toContain('error');
      } finally {
        client.kill('SIGKILL');
      }
    });

    it('isolate cuts a host from all others, later ones too, until rejoin; cuts outlive it', async () => {
      await lab.isolate(a);
      const d = await lab.addHost('ctl-b');
      await Promise.all([
        unanswered(lab, b, a),
        unanswered(lab, c, a),
        unanswered(lab, a, c),
        unanswered(lab, d, a),
        reaches(lab, b, c),
        reaches(lab, d, b),
      ]);
      await lab.rejoin(a);
      await reaches(lab, b, a);
      await reaches(lab, c, a);
      await reaches(lab, a, c);
      await reaches(lab, d, a);

      await lab.cut(a, b);
      await lab.isolate(a);
      await lab.rejoin(a);
      await unanswered(lab, b, a);
      await reaches(lab, c, a);
      await lab.healAll();
      await reaches(lab, b, a);
    });
  });

  it('keeps two labs apart: the same address and port, each lab reaching its own', async () => {
    const one = await NetLab.create();
    const two = await NetLab.create();
    try {
      const [oneA, oneB] = [await one.addHost('a'), await one.addHost('b')];
      const [twoA, twoB] = [await two.addHost('a'), await two.addHost('b')];
      expect(oneA.address).toBe(twoA.address);
      await startEcho(one, oneA, 'one');
      await startEcho(two, twoA, 'two');
      await reaches(one, oneB, oneA, 'one');
      await reaches(two, twoB, twoA, 'two');
      // A cut in lab one leaves lab two alone.
      await one.cut(oneA, oneB);
      await unanswered(one, oneB, oneA);
      await reaches(two, twoB, twoA, 'two');
      // The root namespace reaches neither.
      const root = spawn(process.execPath, ['-e', CLIENT, oneA.address, String(PORT), String(DEADLINE_MS)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const out = collect(root);
      await exitOf(root);
      expect(out().trim()).not.toMatch(/^answer/);
    } finally {
      await one.destroy();
      await two.destroy();
    }
  });

  it('destroy kills what runs in the lab, even what ignores SIGTERM, and deletes its namespaces', async () => {
    const lab = await NetLab.create();
    const host = await lab.addHost('x');
    await startEcho(lab, host, 'x');
    // A shell that ignores SIGTERM, with a child the lab never saw.
    const stubborn = lab.spawn(host, 'sh', ['-c', 'trap "" TERM; sleep 600 & echo $!; wait'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const out = collect(stubborn);
    await waitUntil(() => /^\d+\n/.test(out()), { timeoutMs: REACH_TIMEOUT_MS, what: 'the sleeper' });
    const sleeper = Number(out().trim());
    expect(namespacesOf(lab.name)).toHaveLength(2);

    await lab.destroy();
    await lab.destroy();
    expect(namespacesOf(lab.name)).toEqual([]);
    await exitOf(stubborn);
    expect(stubborn.signalCode).toBe('SIGKILL');
    await waitUntil(() => ended(sleeper), { timeoutMs: REACH_TIMEOUT_MS, what: 'the sleeper to end' });
    expect(() => lab.spawn(host, 'true')).toThrow(/destroyed/);
    await expect(lab.addHost('y')).rejects.toThrow(/destroyed/);
  });

  it('leaves nothing behind when the process exits without destroying its lab', async () => {
    const netlab = new URL('../harness/netlab.ts', import.meta.url).pathname;
    const script = `import { NetLab } from ${JSON.stringify(netlab)};
      const lab = await NetLab.create();
      const host = await lab.addHost('x');
      const sleeper = lab.spawn(host, 'sleep', ['600'], { stdio: 'ignore' });
      console.log(lab.name, sleeper.pid);
      process.exit(1);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const out = collect(child);
    await exitOf(child);
    const [name, pid] = out().trim().split(' ');
    expect(name).toMatch(/^iotdr-\d+-\d+$/);
    expect(namespacesOf(name ?? '')).toEqual([]);
    await waitUntil(() => ended(Number(pid)), { timeoutMs: REACH_TIMEOUT_MS, what: 'the sleeper to end' });
  });

  it('create deletes the namespaces a dead run left, and ends what still ran in them', async () => {
    // A pid that ended: what a crashed run's namespace names carry.
    const deadPid = spawnSync('true').pid;
    const leftover = `iotdr-${deadPid}-1-x`;
    expect(spawnSync('ip', ['netns', 'add', leftover]).status).toBe(0);
    const sleeper = spawn('ip', ['netns', 'exec', leftover, 'sleep', '600'], { stdio: 'ignore' });
    await waitUntil(() => spawnSync('ip', ['netns', 'pids', leftover], { encoding: 'utf8' }).stdout !== '', {
      timeoutMs: REACH_TIMEOUT_MS,
      what: 'the sleeper in the leftover namespace',
    });
    const lab = await NetLab.create();
    try {
      expect(namespacesOf(leftover)).toEqual([]);
      await exitOf(sleeper);
      expect(sleeper.signalCode).toBe('SIGKILL');
    } finally {
      await lab.destroy();
      spawnSync('ip', ['netns', 'delete', leftover]);
      sleeper.kill('SIGKILL');
    }
  });
});

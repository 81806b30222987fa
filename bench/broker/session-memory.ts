/**
 * What one live session costs the broker in memory and files (`npm run bench:session-memory`),
 * the figure behind DEFAULT_BYTES_PER_SESSION in src/broker/capacity.ts.
 *
 * The broker runs in a process of its own (bench/broker/session-memory-server.ts, with
 * `node --expose-gc`), so only its memory is counted; the clients are mqtt.js in this process,
 * each a device of its own (a thing, a certificate from the embedded CA, the device policy
 * template, a device token) that connects with a clean session and subscribes as the device SDK
 * does: to the failover notice and to its commands. After a warm-up round (opened and closed, so
 * code compiled once and caches filled are not charged to sessions), the bench opens `--sessions`
 * mutual-TLS sessions, then as many token sessions beside them, and closes them all; before each
 * reading the broker collects its garbage. Per session: V8 heap, external memory (Buffers) and RSS
 * (all the process holds, OpenSSL's memory included) grown, and descriptors opened.
 *
 * Options: `--sessions N` per kind (default 2,000), `--concurrency N` connections opening at once
 * (default 32), `--warmup N` sessions per kind in the warm-up round (default 100).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecureContext } from 'node:tls';
import { parseArgs } from 'node:util';
import type { MqttClient } from 'mqtt';
import { z } from 'zod';
import {
  DEFAULT_BYTES_PER_SESSION,
  DEFAULT_HEAP_BYTES_PER_SESSION,
  DEFAULT_LIMITS,
  DEVICE_POLICY_TEMPLATE,
  FAILOVER_NOTICE_TOPIC,
  machineCapacity,
  readMachineFacts,
} from '../../src/broker/index.js';
import { ROOT } from '../../test/harness/process.js';
import { Cleanup, check, machine } from '../registry/common.js';
import { type BenchDevice, provisionFleet } from './fleet.js';
import { type Credential, connectClient, contexts, type Target } from './load.js';
import type { BenchMessage, MemorySample, ServerMessage } from './session-memory-server.js';

const REGION = 'bench';
const ZONE = 'iot.test';
const POLICY = 'device';
const START_TIMEOUT_MS = 60_000;
const SAMPLE_TIMEOUT_MS = 60_000;

const intIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const argsSchema = z.object({
  sessions: intIn(100, 100_000),
  concurrency: intIn(1, 1000),
  warmup: intIn(1, 10_000),
});
type Args = z.infer<typeof argsSchema>;

function parse(argv: string[]): Args | string {
  const { values } = parseArgs({
    args: argv,
    options: {
      sessions: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '32' },
      warmup: { type: 'string', default: '100' },
    },
  });
  const parsed = argsSchema.safeParse(values);
  if (parsed.success) return parsed.data;
  return parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n');
}

type Kind = 'mTLS' | 'token';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

const credentialOf = (kind: Kind, d: BenchDevice): Credential =>
  kind === 'mTLS'
    ? { clientId: d.thingName, certPem: d.certPem, keyPem: d.keyPem }
    : { clientId: d.thingName, username: d.thingName, password: d.token };

/** The broker's process and its answers. */
class MeasuredBroker {
  readonly #child: ChildProcess;
  readonly #output: string[] = [];

  constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout?.on('data', (d: Buffer) => this.#output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => this.#output.push(d.toString()));
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  output(): string {
    return this.#output.join('');
  }

  next<T extends ServerMessage['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<ServerMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#child.off('message', onMessage);
        this.#child.off('exit', onExit);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`the broker sent no ${type} within ${timeoutMs} ms:\n${this.output()}`));
      }, timeoutMs);
      const onMessage = (message: ServerMessage) => {
        if (message.type !== type) return;
        done();
        resolve(message as Extract<ServerMessage, { type: T }>);
      };
      const onExit = (code: number | null) => {
        done();
        reject(new Error(`the broker exited (${code}):\n${this.output()}`));
      };
      this.#child.on('message', onMessage);
      this.#child.once('exit', onExit);
    });
  }

  send(message: BenchMessage): void {
    this.#child.send(message);
  }

  /** Its memory after a full collection, once it lists `sessions` live sessions. */
  async sample(sessions: number): Promise<MemorySample> {
    const deadline = Date.now() + SAMPLE_TIMEOUT_MS;
    for (;;) {
      const reply = this.next('memory', SAMPLE_TIMEOUT_MS);
      this.send({ type: 'measure' });
      const sample = await reply;
      if (sample.sessions === sessions) return sample;
      // Closed sessions leave the broker's list a moment after their DISCONNECT.
      check(Date.now() < deadline, `the broker lists ${sample.sessions} sessions, expected ${sessions}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = once(this.#child, 'exit');
    this.send({ type: 'close' });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

function startBroker(stateDir: string, dbPath: string, cleanup: Cleanup): MeasuredBroker {
  const script = join(ROOT, 'bench/broker/session-memory-server.ts');
  const args = ['--state-dir', stateDir, '--db', dbPath, '--region', REGION, '--zone', ZONE];
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const broker = new MeasuredBroker(child);
  cleanup.defer(`stop the measured broker (pid ${child.pid})`, () => broker.stop());
  return broker;
}

/**
 * Connects every device as `kind`, `concurrency` at a time, each subscribing as the device SDK
 * does; every CONNACK and SUBACK must accept. Reports progress at every tenth.
 */
async function openSessions(
  target: Target,
  kind: Kind,
  devices: readonly BenchDevice[],
  concurrency: number,
  log: (line: string) => void,
): Promise<MqttClient[]> {
  const credentials = devices.map((d) => credentialOf(kind, d));
  const tls = contexts(target, credentials);
  const clients: MqttClient[] = [];
  const step = Math.max(1, Math.ceil(devices.length / 10));
  const started = Date.now();
  let next = 0;
  let subscribed = 0;
  const worker = async () => {
    for (let i = next++; i < credentials.length; i = next++) {
      const credential = credentials[i] as Credential;
      const client = await connectClient(target, credential, tls.get(credential) as SecureContext);
      clients.push(client);
      const granted = await client.subscribeAsync({
        [FAILOVER_NOTICE_TOPIC]: { qos: 1 },
        [`$iotdr/things/${credential.clientId}/commands`]: { qos: 1 },
      });
      check(
        granted.every((g) => g.qos === 1),
        `${credential.clientId}: SUBACK ${JSON.stringify(granted)}`,
      );
      subscribed++;
      if (subscribed % step === 0 || subscribed === credentials.length) {
        const seconds = (Date.now() - started) / 1000;
        log(
          `${kind}: ${int(subscribed)} / ${int(credentials.length)} sessions open and subscribed (${Math.round(subscribed / seconds)}/s)`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return clients;
}

async function closeSessions(clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.endAsync()));
  clients.length = 0;
}

function markdown(head: string[], rows: string[][], right: Set<number>): string {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (row: string[]): string =>
    `| ${row.map((cell, c) => (right.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (right.has(c) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

interface Step {
  step: string;
  sample: MemorySample;
}

function stepsTable(steps: Step[]): string {
  const rows = steps.map(({ step, sample: s }) => [
    step,
    int(s.sessions),
    mib(s.heapUsed),
    mib(s.external),
    mib(s.rss),
    int(s.openFiles),
  ]);
  return markdown(
    ['broker after', 'sessions', 'heap used', 'external', 'RSS', 'open files'],
    rows,
    new Set([1, 2, 3, 4, 5]),
  );
}

interface PerSession {
  kind: Kind;
  sessions: number;
  heap: number;
  external: number;
  rss: number;
  files: number;
}

function perSession(kind: Kind, before: MemorySample, after: MemorySample): PerSession {
  const n = after.sessions - before.sessions;
  return {
    kind,
    sessions: n,
    heap: (after.heapUsed - before.heapUsed) / n,
    external: (after.external - before.external) / n,
    rss: (after.rss - before.rss) / n,
    files: (after.openFiles - before.openFiles) / n,
  };
}

function perSessionTable(rows: PerSession[]): string {
  return markdown(
    [
      'auth',
      'sessions',
      'heap per session',
      'external per session',
      'RSS per session',
      'open files per session',
    ],
    rows.map((r) => [
      r.kind,
      int(r.sessions),
      `${int(r.heap)} B`,
      `${int(r.external)} B`,
      `${int(r.rss)} B`,
      r.files.toFixed(2),
    ]),
    new Set([1, 2, 3, 4, 5]),
  );
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  if (typeof args === 'string') {
    console.error(args);
    return 2;
  }
  const started = Date.now();
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    console.error(`\n${signal}: cleaning up`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const log = (line: string) => console.error(`… ${line}`);

  try {
    const base = await mkdtemp(join(tmpdir(), 'iotdr-bench-session-memory-'));
    cleanup.defer(`remove ${base}`, () => rm(base, { recursive: true, force: true }));
    const stateDir = join(base, 'iotdr');
    await mkdir(stateDir);
    console.log(machine().join('\n'));
    console.log(`load:    ${loadavg()[0]?.toFixed(2)} (1-min load average at the start)`);

    const count = 2 * args.sessions;
    log(`provisioning ${int(count)} devices (thing, certificate from the embedded CA, device policy, token)`);
    const dbPath = join(stateDir, 'registry.db');
    const fleet = await provisionFleet({
      stateDir,
      dbPath,
      region: REGION,
      zone: ZONE,
      prefix: 'dev',
      count,
      policy: { name: POLICY, document: DEVICE_POLICY_TEMPLATE() },
    });
    const devices: Record<Kind, BenchDevice[]> = {
      mTLS: fleet.devices.slice(0, args.sessions),
      token: fleet.devices.slice(args.sessions),
    };

    log('starting the broker: node --expose-gc --import tsx bench/broker/session-memory-server.ts');
    const broker = startBroker(stateDir, dbPath, cleanup);
    const ports = await broker.next('listening', START_TIMEOUT_MS);
    console.log(`broker:  pid ${broker.pid}, mTLS port ${ports.tls}, token port ${ports.token}`);
    const target = (port: number): Target => ({
      port,
      caPem: fleet.caPem,
      servername: `mqtt.${ZONE}`,
      pid: broker.pid,
    });
    const targets: Record<Kind, Target> = { mTLS: target(ports.tls), token: target(ports.token) };

    const steps: Step[] = [];
    steps.push({ step: 'start', sample: await broker.sample(0) });
    log(`warm-up: ${args.warmup} sessions of each kind, opened and closed`);
    const warm = [
      ...(await openSessions(
        targets.mTLS,
        'mTLS',
        devices.mTLS.slice(0, args.warmup),
        args.concurrency,
        log,
      )),
      ...(await openSessions(
        targets.token,
        'token',
        devices.token.slice(0, args.warmup),
        args.concurrency,
        log,
      )),
    ];
    await closeSessions(warm);
    const baseline = await broker.sample(0);
    steps.push({ step: 'warm-up (closed again)', sample: baseline });

    const held: MqttClient[] = [];
    cleanup.defer('close the sessions', () => closeSessions(held));
    let before = baseline;
    const rows: PerSession[] = [];
    for (const kind of ['mTLS', 'token'] as const) {
      log(`${kind}: opening ${int(args.sessions)} sessions, ${args.concurrency} at a time`);
      held.push(...(await openSessions(targets[kind], kind, devices[kind], args.concurrency, log)));
      const after = await broker.sample(held.length);
      steps.push({ step: `+ ${int(args.sessions)} ${kind}`, sample: after });
      rows.push(perSession(kind, before, after));
      before = after;
    }
    log('closing every session');
    await closeSessions(held);
    steps.push({ step: 'all closed', sample: await broker.sample(0) });
    await broker.stop();

    console.log('');
    console.log(stepsTable(steps));
    console.log('');
    console.log(perSessionTable(rows));
    const rss = Math.max(...rows.map((r) => r.rss));
    const heap = Math.max(...rows.map((r) => r.heap));
    const facts = readMachineFacts();
    const capacity = machineCapacity(
      facts,
      DEFAULT_LIMITS.handshakesWaiting + DEFAULT_LIMITS.maxHandshakesInFlight,
    );
    console.log('');
    console.log(
      `src/broker/capacity.ts: DEFAULT_BYTES_PER_SESSION ${int(DEFAULT_BYTES_PER_SESSION)} B (${(DEFAULT_BYTES_PER_SESSION / rss).toFixed(2)}× this run's largest RSS per session), DEFAULT_HEAP_BYTES_PER_SESSION ${int(DEFAULT_HEAP_BYTES_PER_SESSION)} B (${(DEFAULT_HEAP_BYTES_PER_SESSION / heap).toFixed(2)}× its largest heap per session)`,
    );
    console.log(
      `this machine: open files ${int(facts.openFiles.soft)} (hard ${int(facts.openFiles.hard)}, from ${facts.openFilesSource}), memory ${mib(facts.memoryBytes)} (${facts.memorySource}), V8 heap limit ${mib(facts.heapLimitBytes)} → maxConnections "auto" = ${int(capacity.maxConnections)}, bound by ${capacity.boundBy} (files ${int(capacity.filesBound)}, memory ${int(capacity.memoryBound)}, heap ${int(capacity.heapBound)})`,
    );
    console.log(
      "\nheap: V8's heap in use; external: memory V8 objects hold outside it (Buffers); RSS: resident memory of the whole process, OpenSSL's included. Every reading follows full garbage collections.",
    );
    console.log(`\n1-min load average at the end: ${loadavg()[0]?.toFixed(2)}`);
    console.log(`total run time ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (error) {
    if (!interrupted) console.error('\nbenchmark failed:', error);
    return 1;
  } finally {
    await cleanup.runAll();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

process.exitCode = await main();

/**
 * The client load, the same code against both brokers: mqtt.js over TLS (MQTT 3.1.1), verifying
 * the broker's certificate as `mqtt.<zone>`, from the bench process (the brokers run in their own).
 *
 * - Connections: connect, wait for CONNACK, DISCONNECT and wait for the socket to close, with a
 *   fixed number in flight. By default every connection is a full TLS handshake: nothing offers
 *   a session to resume. With `resume`, each credential offers the TLS session its previous
 *   connection got (as the device SDK does), and every timed connection must resume. The bench
 *   checks `isSessionReused()` on every socket either way.
 * - QoS1: publishers each keep a window of QoS1 PUBLISHes in flight (a new one when a PUBACK
 *   comes), subscribers hold a QoS1 subscription to every publisher's topic. Every message must
 *   arrive at every subscriber exactly once, or the run fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { check, drive, percentile } from '../registry/common.js';
import { publishTopic, SUBSCRIBE_FILTER } from './fleet.js';

/** One client identity: a certificate and key, or a username and password, and its client id. */
export interface Credential {
  clientId: string;
  certPem?: string;
  keyPem?: string;
  username?: string;
  password?: string;
}

export interface Target {
  port: number;
  caPem: string;
  /** Name the broker's certificate must carry, `mqtt.<zone>`. */
  servername: string;
  /** Process whose CPU time is counted as the broker's, with every process below it (broker workers). */
  pid: number;
  /** Redis the broker depends on, when it has one: its CPU time is counted apart. */
  redisPid?: number;
}

/** CPU seconds (user + system) of the broker, of its Redis and of the bench (the load) over a timed part. */
export interface CpuShare {
  broker: number;
  client: number;
  /** Undefined when the broker has no Redis. */
  redis?: number;
}

export interface Measured {
  /** Operations completed in the timed part. */
  count: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpu: CpuShare;
}

const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of `pid` so far, from /proc (Linux; clock ticks of 1/100 s). */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** `pid` and every process below it (a region's broker workers), from /proc/<pid>/task/<tid>/children. */
export function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i] as number;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue; // gone
    }
    for (const task of tasks) {
      let children = '';
      try {
        children = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const child of children.split(' ')) if (child.trim() !== '') tree.push(Number(child));
    }
  }
  return tree;
}

function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** CPU seconds of these processes together; a process that ended fails the measurement. */
function cpuSecondsOfAll(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      sum += cpuSecondsOf(pid);
    } catch {
      throw new Error(`process ${pid} ended during the measurement (a broker worker died?)`);
    }
  }
  return sum;
}

class CpuMeter {
  readonly #target: Target;
  #pids: number[] = [];
  #broker = 0;
  #redis = 0;
  #client = 0;

  constructor(target: Target) {
    this.#target = target;
  }

  start(): void {
    this.#pids = processTree(this.#target.pid);
    this.#broker = cpuSecondsOfAll(this.#pids);
    if (this.#target.redisPid !== undefined) this.#redis = cpuSecondsOf(this.#target.redisPid);
    this.#client = ownCpuSeconds();
  }

  /** CPU time since `start`, as a share of `seconds` of wall time (1 = one core busy). */
  share(seconds: number): CpuShare {
    const redisPid = this.#target.redisPid;
    return {
      broker: (cpuSecondsOfAll(this.#pids) - this.#broker) / seconds,
      client: (ownCpuSeconds() - this.#client) / seconds,
      ...(redisPid === undefined ? {} : { redis: (cpuSecondsOf(redisPid) - this.#redis) / seconds }),
    };
  }
}

/**
 * Waits until each of these processes (with those below it) is idle: under `idleShare` of a core
 * over `windowMs`, e.g. a broker still closing a thousand sessions, or its Redis still
 * unsubscribing, before the next measurement. Resolves with the ms waited, or undefined when one
 * was still busy after `maxMs`.
 */
export async function quiet(
  pids: readonly number[],
  opts: { idleShare?: number; windowMs?: number; maxMs?: number } = {},
): Promise<number | undefined> {
  const { idleShare = 0.1, windowMs = 500, maxMs = 120_000 } = opts;
  const start = performance.now();
  while (performance.now() - start < maxMs) {
    const trees = pids.map(processTree);
    const before = trees.map(cpuSecondsOfAll);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const wall = (performance.now() - t0) / 1000;
    if (trees.every((tree, i) => (cpuSecondsOfAll(tree) - (before[i] ?? 0)) / wall < idleShare))
      return performance.now() - start;
  }
  return undefined;
}

/** Per credential, its TLS context made once, so the load spends no time parsing PEM per connection. */
export function contexts(target: Target, credentials: readonly Credential[]): Map<Credential, SecureContext> {
  return new Map(
    credentials.map((c) => [
      c,
      createSecureContext({
        ca: target.caPem,
        ...(c.certPem === undefined ? {} : { cert: c.certPem }),
        ...(c.keyPem === undefined ? {} : { key: c.keyPem }),
      }),
    ]),
  );
}

/** mqtt.js hands its options to tls.connect, `secureContext` and `session` included (its types do not list them). */
type TlsClientOptions = IClientOptions & { secureContext: SecureContext; session?: Buffer };

function options(
  target: Target,
  credential: Credential,
  secureContext: SecureContext,
  session?: Buffer,
): TlsClientOptions {
  const opts: TlsClientOptions = {
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: target.port,
    servername: target.servername,
    rejectUnauthorized: true,
    secureContext,
    ...(session === undefined ? {} : { session }),
    clientId: credential.clientId,
    ...(credential.username === undefined ? {} : { username: credential.username }),
    ...(credential.password === undefined ? {} : { password: credential.password }),
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  };
  return opts;
}

/** Connects once; a connection closed before CONNACK rejects instead of waiting for a retry that never comes. */
function open(opts: TlsClientOptions): Promise<MqttClient> {
  // The URL is empty: host, port and protocol come from the options.
  return mqtt.connectAsync('', opts, false);
}

/** Connects once as a device would, with a context from `contexts`; resolves once CONNACK accepted it. */
export function connectClient(
  target: Target,
  credential: Credential,
  secureContext: SecureContext,
): Promise<MqttClient> {
  return open(options(target, credential, secureContext));
}

function tlsOf(client: MqttClient): TLSSocket {
  return client.stream as unknown as TLSSocket;
}

/**
 * Connects once as `open` does, handing every TLS session the broker sends to `keep` (TLS 1.3
 * sends them after the handshake, before CONNACK), so the next connection can offer it.
 */
function openKeepingSessions(opts: TlsClientOptions, keep: (session: Buffer) => void): Promise<MqttClient> {
  const client = mqtt.connect(opts);
  tlsOf(client).on('session', keep);
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      client.off('connect', connected);
      client.end(true);
      reject(error);
    };
    const closed = () => fail(new Error('connection closed before CONNACK'));
    const connected = () => {
      client.off('error', fail);
      client.off('close', closed);
      resolve(client);
    };
    client.once('connect', connected);
    client.once('error', fail);
    client.once('close', closed);
  });
}

/** TLS version and cipher a broker negotiated with the load, from one connection. */
export async function tlsParameters(target: Target, credential: Credential): Promise<string> {
  const ctx = contexts(target, [credential]).get(credential);
  check(ctx !== undefined, 'no TLS context');
  const client = await open(options(target, credential, ctx));
  try {
    const socket = tlsOf(client);
    const cipher = socket.getCipher();
    const key = socket.getEphemeralKeyInfo() as { name?: string; type?: string } | null;
    return `${socket.getProtocol()} ${cipher.standardName ?? cipher.name}${key?.name ? `, ${key.name}` : ''}`;
  } finally {
    await client.endAsync();
  }
}

export interface ConnectionOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /**
   * Resumed connections: each credential first makes one full handshake to get a session, then
   * every connection offers the newest session its credential got, and every one in the timed
   * part must resume. Default false: full handshakes only.
   */
  resume?: boolean;
}

/**
 * Connections per second: connect, CONNACK, DISCONNECT, closed, `concurrency` at a time. A
 * credential is used by one connection at a time (a second session with its client id would take
 * the first one over), so there must be more credentials than connections in flight.
 */
export async function connectionRate(
  target: Target,
  credentials: readonly Credential[],
  opts: ConnectionOptions,
): Promise<Measured> {
  check(credentials.length > opts.concurrency, 'more credentials than connections in flight are needed');
  const ctx = contexts(target, credentials);
  const idle = [...credentials];
  const sessions = new Map<Credential, Buffer>();
  let reused = 0;
  let connack: number[] = [];
  const connectOnce = (credential: Credential) => {
    const connection = options(
      target,
      credential,
      ctx.get(credential) as SecureContext,
      sessions.get(credential),
    );
    return opts.resume
      ? openKeepingSessions(connection, (s) => sessions.set(credential, s))
      : open(connection);
  };
  const once = async () => {
    const credential = idle.shift();
    check(credential !== undefined, 'no idle credential');
    const t0 = performance.now();
    const client = await connectOnce(credential);
    connack.push(performance.now() - t0);
    if (tlsOf(client).isSessionReused()) reused++;
    await client.endAsync();
    idle.push(credential);
  };
  if (opts.resume) await primeSessions(credentials, opts.concurrency, connectOnce);
  check(
    !opts.resume || sessions.size === credentials.length,
    `${sessions.size} sessions for ${credentials.length} credentials`,
  );
  const maxOps = 1_000_000;
  await drive(opts.concurrency, opts.warmupMs, maxOps, once);
  connack = [];
  reused = 0;
  const cpu = new CpuMeter(target);
  cpu.start();
  const result = await drive(opts.concurrency, opts.durationMs, maxOps, once);
  const share = cpu.share(result.seconds);
  if (opts.resume)
    check(
      reused === result.ops,
      `${result.ops - reused} of ${result.ops} connections offering a session were full handshakes; every one must resume`,
    );
  else
    check(reused === 0, `${reused} TLS session(s) were resumed; every connection must be a full handshake`);
  check(connack.length === result.ops, `${connack.length} CONNACKs for ${result.ops} connections`);
  const sorted = Float64Array.from(connack).sort();
  return {
    count: result.ops,
    seconds: result.seconds,
    perSecond: result.ops / result.seconds,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpu: share,
  };
}

/** One full handshake per credential, `concurrency` at a time, so each has a session to offer. */
async function primeSessions(
  credentials: readonly Credential[],
  concurrency: number,
  connectOnce: (c: Credential) => Promise<MqttClient>,
): Promise<void> {
  for (let i = 0; i < credentials.length; i += concurrency) {
    const batch = credentials.slice(i, i + concurrency);
    await Promise.all(batch.map(async (c) => (await connectOnce(c)).endAsync()));
  }
}

export interface Qos1Options {
  /** QoS1 PUBLISHes each publisher keeps in flight. */
  window: number;
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
  /** How long, after the last PUBLISH, every message may take to arrive. */
  drainTimeoutMs: number;
  /** Called once every client is connected and subscribed, before the first PUBLISH (e.g. to see where they landed). */
  connected?: () => Promise<void>;
}

export interface Qos1Result {
  /** PUBACKs the publishers got in the timed part; latency PUBLISH → PUBACK. */
  acked: Measured;
  /** Messages the subscribers got in the timed part; latency PUBLISH → delivery. */
  delivered: Measured;
  /** Every message published in the run (warm-up included), each acknowledged and delivered to every subscriber. */
  published: number;
}

/** Bytes of a payload the bench reads back: publisher index, sequence number, send time. */
const HEADER_BYTES = 16;

/** Seen-flags per sequence number, growing as needed: a duplicate delivery fails the run. */
class SeenSet {
  #bits = new Uint8Array(1024);

  /** Marks `seq`; false when it was marked already. */
  add(seq: number): boolean {
    if (seq >= this.#bits.length) {
      const grown = new Uint8Array(Math.max(seq + 1, this.#bits.length * 2));
      grown.set(this.#bits);
      this.#bits = grown;
    }
    if (this.#bits[seq] === 1) return false;
    this.#bits[seq] = 1;
    return true;
  }
}

async function subscribeQos1(client: MqttClient): Promise<void> {
  const granted = await client.subscribeAsync(SUBSCRIBE_FILTER, { qos: 1 });
  const qos = granted.map((g) => g.qos);
  check(qos.length === 1 && qos[0] === 1, `SUBACK granted ${JSON.stringify(qos)} for ${SUBSCRIBE_FILTER}`);
}

/**
 * QoS1 messages per second from `publishers` (each on `bench/<its client id>/m`) to every one of
 * `subscribers`. Publishing runs for warm-up plus the timed part; the figures count what happened
 * within the timed part. Then the run waits until every message arrived everywhere.
 */
export async function qos1Rate(
  target: Target,
  publishers: readonly Credential[],
  subscribers: readonly Credential[],
  opts: Qos1Options,
): Promise<Qos1Result> {
  check(opts.payloadBytes >= HEADER_BYTES, `payload must be at least ${HEADER_BYTES} bytes`);
  const ctx = contexts(target, [...publishers, ...subscribers]);
  const connectAll = (list: readonly Credential[]) =>
    Promise.all(list.map((c) => open(options(target, c, ctx.get(c) as SecureContext))));
  const clients: MqttClient[] = [];
  try {
    const subs = await connectAll(subscribers);
    clients.push(...subs);
    await Promise.all(subs.map(subscribeQos1));
    const pubs = await connectAll(publishers);
    clients.push(...pubs);
    await opts.connected?.();

    let windowStart = Number.POSITIVE_INFINITY;
    let windowEnd = Number.POSITIVE_INFINITY;
    const inWindow = (t: number) => t >= windowStart && t < windowEnd;
    const ackMs: number[] = [];
    const deliverMs: number[] = [];
    const sent = pubs.map(() => ({ sent: 0 }));
    let received = 0;
    let duplicates = 0;
    let foreign = 0;
    let arrivedAll: (() => void) | undefined;
    let expected = Number.POSITIVE_INFINITY;

    subs.forEach((sub) => {
      const seen = pubs.map(() => new SeenSet());
      sub.on('message', (_topic, payload) => {
        const now = performance.now();
        const p = payload.readUInt32BE(0);
        const set = seen[p];
        if (payload.length !== opts.payloadBytes || set === undefined) {
          foreign++;
          return;
        }
        if (!set.add(payload.readUInt32BE(4))) {
          duplicates++;
          return;
        }
        received++;
        if (inWindow(now)) deliverMs.push(now - payload.readDoubleBE(8));
        if (received >= expected) arrivedAll?.();
      });
    });

    const start = performance.now();
    windowStart = start + opts.warmupMs;
    windowEnd = windowStart + opts.durationMs;
    const cpu = new CpuMeter(target);
    const meterStart = setTimeout(() => cpu.start(), opts.warmupMs);
    let share: CpuShare | undefined;
    // Read by the first publish loop that sees the timed part over.
    const timedPartOver = () => {
      share ??= cpu.share((performance.now() - windowStart) / 1000);
    };

    const publishLoop = async (client: MqttClient, p: number, counter: { sent: number }) => {
      const topic = publishTopic(publishers[p]?.clientId ?? '');
      while (performance.now() < windowEnd) {
        const payload = Buffer.alloc(opts.payloadBytes);
        payload.writeUInt32BE(p, 0);
        payload.writeUInt32BE(counter.sent++, 4);
        const t0 = performance.now();
        payload.writeDoubleBE(t0, 8);
        await client.publishAsync(topic, payload, { qos: 1 });
        const now = performance.now();
        if (inWindow(now)) ackMs.push(now - t0);
      }
      timedPartOver();
    };
    try {
      await Promise.all(
        pubs.flatMap((client, p) => {
          const counter = sent[p] as { sent: number };
          return Array.from({ length: opts.window }, () => publishLoop(client, p, counter));
        }),
      );
    } finally {
      clearTimeout(meterStart);
    }
    const published = sent.reduce((a, b) => a + b.sent, 0);
    expected = published * subs.length;
    if (received < expected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.drainTimeoutMs);
        arrivedAll = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    check(foreign === 0, `${foreign} message(s) not published by this run`);
    check(duplicates === 0, `${duplicates} duplicate deliveries`);
    check(
      received === expected,
      `${received} of ${expected} deliveries arrived within ${opts.drainTimeoutMs} ms of the last PUBACK`,
    );
    check(share !== undefined, 'the timed part ended before its CPU time was read');
    const seconds = opts.durationMs / 1000;
    const measured = (latencies: number[]): Measured => {
      const sorted = Float64Array.from(latencies).sort();
      return {
        count: latencies.length,
        seconds,
        perSecond: latencies.length / seconds,
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
        cpu: share as CpuShare,
      };
    };
    return { acked: measured(ackMs), delivered: measured(deliverMs), published };
  } finally {
    await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)));
  }
}

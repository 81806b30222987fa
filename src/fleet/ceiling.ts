/**
 * The ceiling: how many connections a second a broker accepts from a minimal client — TCP, TLS,
 * MQTT CONNECT, CONNACK, DISCONNECT, with no SDK, no DNS and no backoff — with enough connections
 * in flight to saturate it. The drill measures it on the secondary in the same run as the fleet,
 * so the fleet's reconnect is compared with what the broker can physically take on that machine,
 * not with another slow reconnect. The storm harness of the tests runs the same load for as long as
 * it is told.
 *
 * `connectLoad` runs in the calling thread; `measureCeiling` spreads it over worker threads so the
 * clients' side of the handshakes (about what the broker's costs) uses every core.
 */
import { availableParallelism } from 'node:os';
import { connect, createSecureContext, type SecureContext } from 'node:tls';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../common/index.js';
import type { DeviceAuth } from './types.js';

/** One identity the load connects as: a registered device's client id and credentials. */
export interface LoadIdentity {
  clientId: string;
  auth: DeviceAuth;
}

export interface ConnectLoadOptions {
  host: string;
  port: number;
  /** SNI: the DR name the server certificate holds. */
  servername: string;
  caPem: string;
  /** Connected as in turn; each connection slot takes the next one. */
  identities: LoadIdentity[];
  /** Connections at once; each connects again as soon as the last one ended. */
  inFlight: number;
  /** How long the load runs, ms (an abort ends it sooner). */
  durationMs: number;
  /** The rate counts CONNACKs after this, ms: the load's own start is not the broker's pace. */
  warmupMs: number;
  /** Gives up on one connection after this, ms. */
  connectTimeoutMs: number;
  /** Source addresses, one per connection slot in turn (a broker limits connections per address). */
  localAddresses?: string[];
}

export interface ConnectLoadResult {
  /** CONNACKs accepting the connection. */
  connacks: number;
  /** CONNACKs refusing it (bad credentials, server unavailable). */
  refused: number;
  /** Connections that closed or failed before a CONNACK. */
  errors: number;
  timeouts: number;
  /** Accepting CONNACKs per second after the warm-up. */
  connectsPerSecond: number;
}

/** MQTT 3.1.1 CONNECT: clean session, 60 s keep-alive, the client id, a username and password for a token [MQTT-3.1]. */
export function connectPacket(clientId: string, auth: DeviceAuth): Buffer {
  const field = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const token = auth.type === 'token';
  // Flags: clean session (0x02), and user name (0x80) and password (0x40) for a token.
  const flags = 0x02 | (token ? 0xc0 : 0);
  const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, 0, 60]);
  const payload = Buffer.concat([
    field(clientId),
    ...(auth.type === 'token' ? [field(clientId), field(auth.token)] : []),
  ]);
  const length: number[] = [];
  let n = variable.length + payload.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x10, ...length]), variable, payload]);
}

/** DISCONNECT [MQTT-3.14]: the connection ends as a device's would, not as a lost one. */
const DISCONNECT = Buffer.from([0xe0, 0x00]);

type Outcome = 'connacks' | 'refused' | 'errors' | 'timeouts';

function connectOnce(
  options: ConnectLoadOptions,
  identity: LoadIdentity,
  context: SecureContext,
  localAddress: string | undefined,
): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const socket = connect({
      host: options.host,
      port: options.port,
      servername: options.servername,
      secureContext: context,
      ...(localAddress === undefined ? {} : { localAddress }),
      // The load stands for the broker's side of the work: the clients skip verifying its chain,
      // the costliest part of a client's handshake, so the clients outpace the broker.
      rejectUnauthorized: false,
    });
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome === 'connacks') {
        // The broker closes on DISCONNECT; a broker that does not is not waited for.
        socket.end(DISCONNECT);
        setTimeout(() => socket.destroy(), 1000).unref();
      } else socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish('timeouts'), options.connectTimeoutMs);
    socket.once('secureConnect', () => socket.write(connectPacket(identity.clientId, identity.auth)));
    socket.on('data', (data: Buffer) => {
      // CONNACK: 0x20 0x02 flags code [MQTT-3.2]
      if (data[0] === 0x20 && data.length >= 4) finish(data[3] === 0 ? 'connacks' : 'refused');
    });
    socket.once('error', () => finish('errors'));
    socket.once('close', () => finish('errors'));
  });
}

/**
 * Runs the load in this thread until its time is up or `signal` aborts; the counts. An abort
 * answers at once with the counts so far: the connections in flight end on their own.
 */
export async function connectLoad(
  options: ConnectLoadOptions,
  signal?: AbortSignal,
): Promise<ConnectLoadResult> {
  if (options.identities.length === 0) throw new Error('a connect load needs at least one identity');
  const contexts = options.identities.map((identity) =>
    createSecureContext({
      ca: [options.caPem],
      ...(identity.auth.type === 'mtls' ? { cert: identity.auth.certPem, key: identity.auth.keyPem } : {}),
    }),
  );
  const counts = { connacks: 0, refused: 0, errors: 0, timeouts: 0 };
  const start = Date.now();
  const end = start + options.durationMs;
  const warm = start + options.warmupMs;
  let atWarm: number | undefined;
  let next = 0;
  const slot = async (i: number) => {
    const localAddress = options.localAddresses?.[i % options.localAddresses.length];
    while (Date.now() < end && !signal?.aborted) {
      const n = next++ % options.identities.length;
      const outcome = await connectOnce(
        options,
        options.identities[n] as LoadIdentity,
        contexts[n] as SecureContext,
        localAddress,
      );
      if (atWarm === undefined && Date.now() >= warm) atWarm = counts.connacks;
      counts[outcome]++;
    }
  };
  const aborted = new Promise<void>((resolve) => {
    if (signal?.aborted) resolve();
    signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  await Promise.race([Promise.all(Array.from({ length: options.inFlight }, (_, i) => slot(i))), aborted]);
  const measuredMs = Date.now() - Math.max(warm, start);
  const connectsPerSecond =
    atWarm === undefined || measuredMs <= 0 ? 0 : ((counts.connacks - atWarm) * 1000) / measuredMs;
  return { ...counts, connectsPerSecond: Math.round(connectsPerSecond) };
}

/** The ceiling as the drill reports it. */
export interface Ceiling {
  /** Accepting CONNACKs per second over every worker, after the warm-up. */
  connectsPerSecond: number;
  auth: DeviceAuth['type'];
  inFlight: number;
  durationMs: number;
  refused: number;
  errors: number;
  timeouts: number;
}

export interface MeasureCeilingOptions extends Omit<ConnectLoadOptions, 'localAddresses'> {
  /** Worker threads sharing the load. Default: the machine's parallelism. */
  workers?: number;
  /** Source addresses for the connection slots, spread over the workers. */
  localAddresses?: string[];
}

/** The load spread over worker threads, each with its share of the slots and identities; the sums. */
export async function measureCeiling(options: MeasureCeilingOptions): Promise<Ceiling> {
  const workers = Math.max(1, Math.min(options.workers ?? availableParallelism(), options.inFlight));
  const { workers: _, ...load } = options;
  const shares = Array.from({ length: workers }, (_, w) => {
    const share: ConnectLoadOptions = {
      ...load,
      inFlight: Math.floor(options.inFlight / workers) + (w < options.inFlight % workers ? 1 : 0),
      identities: options.identities.filter((_, i) => i % workers === w),
      ...(options.localAddresses
        ? { localAddresses: options.localAddresses.filter((_, i) => i % workers === w) }
        : {}),
    };
    if (share.identities.length === 0) share.identities = options.identities;
    return share;
  });
  const results = await Promise.all(shares.map(runInWorker));
  const sum = (key: keyof ConnectLoadResult) => results.reduce((n, r) => n + r[key], 0);
  return {
    connectsPerSecond: sum('connectsPerSecond'),
    auth: options.identities[0]?.auth.type ?? 'mtls',
    inFlight: options.inFlight,
    durationMs: options.durationMs,
    refused: sum('refused'),
    errors: sum('errors'),
    timeouts: sum('timeouts'),
  };
}

function runInWorker(share: ConnectLoadOptions): Promise<ConnectLoadResult> {
  return new Promise((resolve, reject) => {
    const worker: Worker = startWorker(import.meta.url, './ceiling-worker', { workerData: share });
    let result: ConnectLoadResult | undefined;
    worker.once('message', (message: ConnectLoadResult) => {
      result = message;
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`the ceiling's worker thread exited (${code}) without a result`));
    });
  });
}

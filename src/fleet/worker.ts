/**
 * A worker thread running part of the simulated fleet: one DeviceClient per device, each publishing
 * telemetry `{seq, t}` on `devices/<thing>/telemetry` at its rate once first connected, and
 * reporting what changed in each device's state to the coordinator ten times a second.
 */
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { DeviceClient, DnsCache, QueueFullError } from '../device/index.js';
import { queueFileOf } from './queues.js';
import {
  type DeviceRecord,
  RETRY_CAUSES,
  retryCause,
  type WorkerCommand,
  type WorkerReport,
  type WorkerSetup,
} from './types.js';

/** How often device states go to the coordinator, ms. */
const REPORT_MS = 100;
/**
 * Least time between two commits of a queue file, ms: the thread's devices of one file share a
 * transaction (a commit costs about as much for one row as for fifty; eight files a thread on two
 * cores leave a turn's commit one or two rows), and a message is accepted up to this much later.
 * What a device accepted while away is in the file when it reconnects, so a drill's first PUBACK
 * after a move does not wait for a commit.
 */
const QUEUE_COMMIT_INTERVAL_MS = 100;

const setup = workerData as WorkerSetup;
const port = parentPort;
if (!port) throw new Error('the fleet worker runs in a worker thread');

const send = (report: WorkerReport) => port.postMessage(report);
let publishing = true;
let stopping = false;

/** Devices whose record changed since the last report: 10,000 devices are not all sent 10 times a second. */
const dirty = new Set<Running>();

interface Running {
  client: DeviceClient;
  record: DeviceRecord;
  ackedAtConnect: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The thread's devices share their DNS re-checks' answers, each kept no longer than its TTL, as
 * devices behind one caching resolver do: a thread of 500 devices re-checking every 5 s asks once
 * per TTL instead of 100 times a second.
 */
const dnsCache = new DnsCache();

const running: Running[] = setup.devices.map((device) => {
  const client = new DeviceClient({
    thingName: device.thingName,
    zone: setup.zone,
    port: setup.port,
    auth:
      device.auth.type === 'mtls'
        ? { type: 'mtls', certPem: device.auth.certPem, keyPem: device.auth.keyPem, caPem: setup.caPem }
        : { type: 'token', token: device.auth.token, caPem: setup.caPem, port: setup.port },
    dns: { servers: setup.dnsServers, recheckMs: setup.dnsRecheckMs },
    dnsCache,
    backoff: setup.backoff,
    // Devices share a few queue files (one connection per file in this thread): a file per device
    // would hold three descriptors each, past the process's limit for a 10,000-device fleet.
    // A drill kills processes, never the power: the simulator spares itself an fsync per message.
    queue: {
      path: join(setup.queueDir, `queue-${queueFileOf(device.thingName)}.db`),
      synchronous: 'normal',
      commitIntervalMs: QUEUE_COMMIT_INTERVAL_MS,
    },
    ...(device.localAddress === undefined ? {} : { localAddress: device.localAddress }),
  });
  const record: DeviceRecord = {
    thingName: device.thingName,
    region: null,
    connectedAt: null,
    disconnectedAt: null,
    reconnectedAt: null,
    firstAckAt: null,
    resumed: false,
    accepted: 0,
    acked: 0,
    queueDepth: 0,
    lastSeq: 0,
    moves: 0,
    retries: Object.fromEntries(RETRY_CAUSES.map((c) => [c, 0])) as DeviceRecord['retries'],
    backoffMs: 0,
  };
  const r: Running = { client, record, ackedAtConnect: 0, timer: undefined };
  client.on('connected', (e) => {
    const now = Date.now();
    record.region = e.region ?? setup.regionsByAddress[e.address] ?? e.address;
    record.connectedAt ??= now;
    if (record.disconnectedAt !== null) record.reconnectedAt = now;
    record.firstAckAt = null;
    record.resumed = e.resumed;
    r.ackedAtConnect = client.counters.acked;
  });
  client.on('disconnected', () => {
    record.region = null;
    record.disconnectedAt = Date.now();
    record.reconnectedAt = null;
    record.firstAckAt = null;
  });
  client.onAny(() => dirty.add(r));
  // The first PUBACK after a connect, timed when it comes: the device publishes through that region.
  client.on('queue', () => {
    if (record.region !== null && record.firstAckAt === null && client.counters.acked > r.ackedAtConnect)
      record.firstAckAt = Date.now();
  });
  client.on('moved', () => {
    record.moves++;
  });
  // The first wait after a connection ended carries why it ended, not a failed connect.
  let dropped = false;
  client.on('disconnected', () => {
    dropped = true;
  });
  client.on('retry', (e) => {
    if (dropped) dropped = false;
    else record.retries[retryCause(e.error)]++;
    record.backoffMs += e.delayMs;
  });
  return r;
});

function tick(r: Running): void {
  if (!publishing || stopping) return;
  const seq = r.record.lastSeq + 1;
  r.client
    .publish(`devices/${r.record.thingName}/telemetry`, { seq, t: Date.now() })
    .then(() => {
      r.record.lastSeq = Math.max(r.record.lastSeq, seq);
      r.record.accepted++;
      dirty.add(r);
    })
    .catch((error: unknown) => {
      // A full queue refuses the message: it was never accepted, so it is not counted.
      if (!(error instanceof QueueFullError) && !stopping)
        send({ type: 'error', message: (error as Error).message });
    });
}

const intervalMs = setup.ratePerDevice > 0 ? 1000 / setup.ratePerDevice : 0;
for (const [i, r] of running.entries()) {
  // Devices power on one after another (a closed client ignores a late start).
  if (setup.startSpacingMs > 0) setTimeout(() => r.client.start(), i * setup.startSpacingMs);
  else r.client.start();
  // Every simulated device carries out its commands at once (the drill counts the lost ones).
  void r.client
    .onCommand((command) => ({ status: 'succeeded', result: { name: command.name } }))
    .catch((error: Error) => send({ type: 'error', message: error.message }));
  if (intervalMs > 0) {
    // A device starts publishing once it first connected (as one does after powering on), its first
    // message at a random point of its interval, so the fleet does not publish in bursts. From then
    // on it publishes whether connected or not: its queue keeps what it accepted.
    const off = r.client.on('connected', () => {
      off();
      if (stopping) return;
      setTimeout(
        () => {
          if (stopping) return;
          tick(r);
          r.timer = setInterval(() => tick(r), intervalMs);
        },
        Math.floor(Math.random() * intervalMs),
      );
    });
  }
}
send({ type: 'ready', devices: running.length });

const reporter = setInterval(() => {
  if (dirty.size === 0) return;
  const changed: DeviceRecord[] = [];
  for (const r of dirty) {
    r.record.acked = r.client.counters.acked;
    r.record.queueDepth = r.client.queueDepth;
    changed.push({ ...r.record, retries: { ...r.record.retries } });
  }
  dirty.clear();
  send({ type: 'records', records: changed });
}, REPORT_MS);

port.on('message', (command: WorkerCommand) => {
  if (command.type === 'pause') publishing = false;
  else if (command.type === 'resume') publishing = true;
  else if (command.type === 'stop') void stop();
});

async function stop(): Promise<void> {
  stopping = true;
  for (const r of running) if (r.timer) clearInterval(r.timer);
  clearInterval(reporter);
  await Promise.allSettled(running.map((r) => r.client.close()));
  send({ type: 'records', records: running.map((r) => ({ ...r.record, region: null })) });
  send({ type: 'stopped' });
  port?.close();
}

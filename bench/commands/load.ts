/**
 * The three command-and-control loads against one region's cnc listener: single onboardings,
 * bulk onboarding jobs, and commands answered by a connected device.
 */
import { webcrypto } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { x509 } from '../../src/pki/index.js';
import { check, type DriveResult, drive } from '../registry/common.js';
import { type Client, HOST, ZONE } from './region.js';

/** A device onboarded with a key pair made by iotdr, as the bench keeps it for MQTT. */
export interface OnboardedDevice {
  thingName: string;
  certificatePem: string;
  privateKeyPem: string;
}

export interface OnboardResult {
  warm: DriveResult;
  timed: DriveResult;
  /** The first device onboarded (in the warm-up), for the command part. */
  first: OnboardedDevice;
}

/** (a) `POST /v1/devices`, key made by iotdr, `concurrency` in flight; every answer must be 201. */
export async function onboardSingles(
  cnc: Client,
  template: string,
  concurrency: number,
  warmupMs: number,
  durationMs: number,
  maxOps: number,
): Promise<OnboardResult> {
  let first: OnboardedDevice | undefined;
  const onboard = (prefix: string) => async (i: number) => {
    const thingName = `${prefix}-${i}`;
    const r = await cnc.call('POST', '/v1/devices', JSON.stringify({ thingName, template }));
    check(r.status === 201, `POST /v1/devices ${thingName} answered ${r.status}: ${r.body.slice(0, 300)}`);
    const body = JSON.parse(r.body) as Partial<OnboardedDevice>;
    check(
      typeof body.certificatePem === 'string' && typeof body.privateKeyPem === 'string',
      `POST /v1/devices ${thingName} gave no certificate and key`,
    );
    if (first === undefined && prefix === 'warm')
      first = { thingName, certificatePem: body.certificatePem, privateKeyPem: body.privateKeyPem };
  };
  const warm = await drive(concurrency, warmupMs, maxOps, onboard('warm'));
  const timed = await drive(concurrency, durationMs, maxOps, onboard('single'));
  check(first !== undefined, 'no device was onboarded in the warm-up');
  return { warm, timed, first };
}

/** A CSV field, quoted (the CSR spans lines). */
const quoted = (s: string): string => `"${s.replaceAll('"', '""')}"`;

/** `n` PEM CSRs, each for its own ECDSA P-256 key pair, made here (not timed). */
export async function makeCsrs(names: string[]): Promise<string[]> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const csrs: string[] = [];
  for (const name of names) {
    const keys = (await webcrypto.subtle.generateKey(alg, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=${name}`,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    csrs.push(csr.toString('pem'));
  }
  return csrs;
}

export interface JobResult {
  jobId: string;
  seconds: number;
  /** How many GET polls it took (every 50 ms). */
  polls: number;
}

/** The fields of `GET /v1/onboarding-jobs/{id}` the bench reads. */
interface Job {
  state: string;
  total: number;
  succeeded: number;
  failed: number;
  results?: Array<{ status?: string }>;
}

const JOB_POLL_MS = 50;
const JOB_TIMEOUT_MS = 600_000;

/**
 * (b) one bulk job from a CSV body: wall time from the POST until a GET shows it `succeeded`.
 * With `csrs`, each line carries its CSR (iotdr only signs); without, iotdr makes the keys.
 */
export async function bulkJob(
  cnc: Client,
  template: string,
  names: string[],
  csrs?: string[],
): Promise<JobResult> {
  const lines = [csrs === undefined ? 'thingName' : 'thingName,csr'];
  names.forEach((name, i) => {
    lines.push(csrs === undefined ? name : `${name},${quoted(csrs[i] ?? '')}`);
  });
  const body = `${lines.join('\r\n')}\r\n`;
  const start = process.hrtime.bigint();
  const submitted = await cnc.call('POST', `/v1/onboarding-jobs?template=${template}`, body, {
    'content-type': 'text/csv',
  });
  check(
    submitted.status === 202,
    `POST /v1/onboarding-jobs answered ${submitted.status}: ${submitted.body.slice(0, 500)}`,
  );
  const { jobId } = JSON.parse(submitted.body) as { jobId: string };
  let polls = 0;
  for (;;) {
    const job = await cnc.json<Job>('GET', `/v1/onboarding-jobs/${jobId}`, 200);
    polls++;
    if (job.state !== 'running') {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      check(
        job.state === 'succeeded' && job.succeeded === names.length && job.failed === 0,
        `job ${jobId} ended ${job.state}: ${job.succeeded} succeeded, ${job.failed} failed of ${job.total}; ` +
          `${JSON.stringify(job.results?.find((r) => r.status !== 'created') ?? {})}`,
      );
      return { jobId, seconds, polls };
    }
    check(Number(process.hrtime.bigint() - start) / 1e6 < JOB_TIMEOUT_MS, `job ${jobId} still running`);
    await new Promise((r) => setTimeout(r, JOB_POLL_MS));
  }
}

/**
 * A device that answers every command at once: subscribed (QoS 1) to its commands topic, it
 * publishes `{status: succeeded}` on the reply topic of each command it gets. `replied` resolves
 * when the reply to a command id got its PUBACK (the region then holds it).
 */
export class AnsweringDevice {
  readonly received = new Map<string, number>();
  readonly #waiters = new Map<string, () => void>();
  readonly #replied = new Set<string>();

  private constructor(
    readonly client: MqttClient,
    readonly thingName: string,
  ) {
    const commands = `$iotdr/things/${thingName}/commands`;
    client.on('message', (topic, payload) => {
      if (topic !== commands) return;
      const { commandId } = JSON.parse(payload.toString()) as { commandId: string };
      this.received.set(commandId, (this.received.get(commandId) ?? 0) + 1);
      const reply = JSON.stringify({ status: 'succeeded', result: { ok: true } });
      client.publish(`${topic}/${commandId}/reply`, reply, { qos: 1 }, (error) => {
        if (error) return;
        this.#replied.add(commandId);
        this.#waiters.get(commandId)?.();
      });
    });
  }

  static async connect(port: number, caPem: string, device: OnboardedDevice): Promise<AnsweringDevice> {
    const client = await mqtt.connectAsync({
      protocol: 'mqtts',
      host: HOST,
      port,
      servername: `mqtt.${ZONE}`,
      ca: caPem,
      cert: device.certificatePem,
      key: device.privateKeyPem,
      rejectUnauthorized: true,
      clientId: device.thingName,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      protocolVersion: 4,
    });
    const answering = new AnsweringDevice(client, device.thingName);
    await client.subscribeAsync(`$iotdr/things/${device.thingName}/commands`, { qos: 1 });
    return answering;
  }

  /** Resolves once the device's reply to `commandId` was acknowledged by the broker. */
  replied(commandId: string, timeoutMs: number): Promise<void> {
    if (this.#replied.has(commandId)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(commandId);
        reject(new Error(`command ${commandId} reached no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(commandId, () => {
        clearTimeout(timer);
        this.#waiters.delete(commandId);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

const COMMAND_TIMEOUT_MS = 30_000;
/** Between GETs once the reply is in the broker: the state is written just after the PUBACK. */
const STATE_POLL_MS = 2;

/**
 * (c) one command end to end: POST (201) → the device answers → GET /v1/commands/{id} shows
 * `succeeded`. The bench polls only once the device's reply was acknowledged, so the GETs do not
 * load the region while the command is on its way; the latency includes at most one poll interval.
 */
export function issueCommand(cnc: Client, device: AnsweringDevice): (i: number) => Promise<void> {
  return async (i) => {
    const r = await cnc.call(
      'POST',
      `/v1/devices/${device.thingName}/commands`,
      JSON.stringify({ name: 'ping', payload: { i } }),
    );
    check(r.status === 201, `POST commands answered ${r.status}: ${r.body.slice(0, 300)}`);
    const { commandId } = JSON.parse(r.body) as { commandId: string };
    await device.replied(commandId, COMMAND_TIMEOUT_MS);
    const deadline = Date.now() + COMMAND_TIMEOUT_MS;
    for (;;) {
      const command = await cnc.json<{ state: string }>('GET', `/v1/commands/${commandId}`, 200);
      if (command.state === 'succeeded') return;
      check(
        command.state === 'pending' || command.state === 'delivered',
        `command ${commandId} is ${command.state}`,
      );
      check(Date.now() < deadline, `command ${commandId} still ${command.state} after its reply`);
      await new Promise((resolve) => setTimeout(resolve, STATE_POLL_MS));
    }
  };
}

/**
 * The region's broker against Debian's mosquitto, same machine, same run, same client load
 * (`npm run bench:broker`):
 *
 * (1) mTLS connections/s: connect with a device certificate, CONNACK, DISCONNECT, closed; every
 *     TLS handshake a full one;
 * (2) mTLS resumed connections/s: the same, each connection offering the TLS session its device's
 *     previous connection got (as the device SDK does after a move); every one must resume;
 * (3) token connections/s: the same with username = thing name and password = its device token;
 * (4) QoS1 messages/s: publishers with a window of QoS1 PUBLISHes in flight, subscribers of QoS1;
 *     PUBACKs and deliveries both counted, every message checked to arrive exactly once.
 *
 * iotdr runs as `iotdr region` (or, while the region does not start a broker, createBroker in a
 * child process, see iotdr.ts); mosquitto from its binary with a configuration written here. Both
 * get the same CA, device certificates and passwords. Each figure runs on one broker, then on the
 * other, the order alternating from figure to figure.
 *
 * Options: `--seconds S` timed part of each measurement (default 5), `--warmup S` (default 1),
 * `--concurrency N` connections in flight (default 16), `--publishers N` (default 4),
 * `--subscribers N` (default 1), `--window N` PUBLISHes in flight per publisher (default 16),
 * `--payload B` bytes per message (default 64), `--iotdr auto|region|broker` (default auto).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { Cleanup, machine, sqliteVersion } from '../registry/common.js';
import { type BenchDevice, provisionFleet } from './fleet.js';
import { type IotdrSetup, type RunningIotdr, startRegion, startStandalone } from './iotdr.js';
import {
  type Credential,
  connectionRate,
  type Measured,
  qos1Rate,
  type Target,
  tlsParameters,
} from './load.js';
import { findMosquitto, type RunningMosquitto, startMosquitto } from './mosquitto.js';
import { type BrokerName, type Row, ratio, table } from './report.js';

const REGION = 'bench';
const ZONE = 'iot.test';
/** Credentials per connection in flight: a device rests between two of its connections. */
const CREDENTIALS_PER_SLOT = 4;
const DRAIN_TIMEOUT_MS = 30_000;

const intIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const argsSchema = z.object({
  seconds: z.coerce.number().min(0.5).max(600),
  warmup: z.coerce.number().min(0).max(60),
  concurrency: intIn(1, 1000),
  publishers: intIn(1, 100),
  subscribers: intIn(1, 100),
  window: intIn(1, 1000),
  payload: intIn(16, 128 * 1024),
  iotdr: z.enum(['auto', 'region', 'broker']),
  'mosquitto-nagle': z.boolean(),
});
type Args = z.infer<typeof argsSchema>;

function parse(argv: string[]): Args | string {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '16' },
      publishers: { type: 'string', default: '4' },
      subscribers: { type: 'string', default: '1' },
      window: { type: 'string', default: '16' },
      payload: { type: 'string', default: '64' },
      iotdr: { type: 'string', default: 'auto' },
      'mosquitto-nagle': { type: 'boolean', default: false },
    },
  });
  const parsed = argsSchema.safeParse(values);
  if (parsed.success) return parsed.data;
  return parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n');
}

const mtls = (d: BenchDevice): Credential => ({
  clientId: d.thingName,
  certPem: d.certPem,
  keyPem: d.keyPem,
});
const token = (d: BenchDevice): Credential => ({
  clientId: d.thingName,
  username: d.thingName,
  password: d.token,
});

async function startIotdr(
  setup: IotdrSetup,
  mode: Args['iotdr'],
  log: (l: string) => void,
): Promise<RunningIotdr> {
  if (mode !== 'broker') {
    log('starting iotdr region');
    const region = await startRegion(setup);
    if (region) return region;
    if (mode === 'region') throw new Error('iotdr region runs no broker (its /livez names no mqtt URL)');
    log('iotdr region runs no broker yet: starting createBroker in a child process instead');
  }
  return startStandalone(setup);
}

/** Lines a process printed, each once with its count (the brokers log at warn and above). */
function printed(output: string): string[] {
  const counts = new Map<string, number>();
  for (const raw of output.split('\n')) {
    // mosquitto starts each line with its clock (seconds since 1970): the same message, counted once.
    const line = raw.trim().replace(/^\d+: /, '');
    if (line === '' || line.startsWith('{"tls"')) continue;
    const short = line.length > 200 ? `${line.slice(0, 200)}…` : line;
    counts.set(short, (counts.get(short) ?? 0) + 1);
  }
  return [...counts].map(([line, n]) => `${n}× ${line}`);
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  if (typeof args === 'string') {
    console.error(args);
    return 2;
  }
  const bin = await findMosquitto();
  if ('missing' in bin) {
    console.error(`bench:broker needs Debian's mosquitto: ${bin.missing}`);
    return 1;
  }

  const started = process.hrtime.bigint();
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
    const base = await mkdtemp(join(tmpdir(), 'iotdr-bench-broker-'));
    cleanup.defer(`remove ${base}`, () => rm(base, { recursive: true, force: true }));
    const stateDir = join(base, 'iotdr');
    const mosquittoDir = join(base, 'mosquitto');
    await mkdir(stateDir);
    await mkdir(mosquittoDir);
    console.log(machine().join('\n'));
    console.log(`load:    ${loadavg()[0]?.toFixed(2)} (1-min load average at the start)`);
    console.log(`sqlite:  ${sqliteVersion(base)} (better-sqlite3)`);

    const slots = args.concurrency * CREDENTIALS_PER_SLOT;
    const count = slots + args.publishers + args.subscribers;
    log(`provisioning ${count} devices (certificate from the embedded CA, policy, device token)`);
    const dbPath = join(stateDir, 'registry.db');
    const fleet = await provisionFleet({
      stateDir,
      dbPath,
      region: REGION,
      zone: ZONE,
      prefix: 'dev',
      count,
    });
    const connecting = fleet.devices.slice(0, slots);
    const publishers = fleet.devices.slice(slots, slots + args.publishers).map(mtls);
    const subscribers = fleet.devices.slice(slots + args.publishers).map(mtls);

    log('starting mosquitto');
    const mosquitto: RunningMosquitto = await startMosquitto(
      bin,
      mosquittoDir,
      {
        caPem: fleet.caPem,
        certPem: fleet.server.certPem,
        keyPem: fleet.server.keyPem,
        passwords: new Map(fleet.devices.map((d) => [d.thingName, d.token])),
      },
      cleanup,
      // Both brokers send without Nagle's delay, as iotdr's listener does; --mosquitto-nagle shows its default.
      !args['mosquitto-nagle'],
    );
    const iotdr = await startIotdr(
      { stateDir, dbPath, region: REGION, zone: ZONE, cleanup },
      args.iotdr,
      log,
    );
    console.log(`iotdr:   ${iotdr.command} (pid ${iotdr.pid})`);
    console.log(
      `mosquitto: ${mosquitto.version} (pid ${mosquitto.pid}), configuration in bench/broker/mosquitto.ts`,
    );

    const targets: Record<BrokerName, { mtls: Target; token: Target }> = {
      iotdr: {
        mtls: { port: iotdr.mtlsPort, caPem: fleet.caPem, servername: `mqtt.${ZONE}`, pid: iotdr.pid },
        token: { port: iotdr.tokenPort, caPem: fleet.caPem, servername: `mqtt.${ZONE}`, pid: iotdr.pid },
      },
      mosquitto: {
        mtls: {
          port: mosquitto.mtlsPort,
          caPem: fleet.caPem,
          servername: `mqtt.${ZONE}`,
          pid: mosquitto.pid,
        },
        token: {
          port: mosquitto.passwordPort,
          caPem: fleet.caPem,
          servername: `mqtt.${ZONE}`,
          pid: mosquitto.pid,
        },
      },
    };
    const first = connecting[0] as BenchDevice;
    for (const broker of ['iotdr', 'mosquitto'] as const) {
      const t = targets[broker];
      console.log(
        `tls:     ${broker}: mTLS ${await tlsParameters(t.mtls, mtls(first))}; token ${await tlsParameters(t.token, token(first))}`,
      );
    }

    const timing = { warmupMs: args.warmup * 1000, durationMs: args.seconds * 1000 };
    const rows: Row[] = [];
    const figures: Array<{
      figure: string;
      inFlight: string;
      run: (broker: BrokerName) => Promise<Measured[]>;
      names?: string[];
    }> = [
      {
        figure: 'mTLS connections/s',
        inFlight: String(args.concurrency),
        run: async (b) => [
          await connectionRate(targets[b].mtls, connecting.map(mtls), {
            ...timing,
            concurrency: args.concurrency,
          }),
        ],
      },
      {
        figure: 'mTLS resumed connections/s',
        inFlight: String(args.concurrency),
        run: async (b) => [
          await connectionRate(targets[b].mtls, connecting.map(mtls), {
            ...timing,
            concurrency: args.concurrency,
            resume: true,
          }),
        ],
      },
      {
        figure: 'token connections/s',
        inFlight: String(args.concurrency),
        run: async (b) => [
          await connectionRate(targets[b].token, connecting.map(token), {
            ...timing,
            concurrency: args.concurrency,
          }),
        ],
      },
      {
        figure: 'QoS1 messages/s',
        names: ['QoS1 PUBACKs/s', 'QoS1 deliveries/s'],
        inFlight: `${args.publishers} × ${args.window}`,
        run: async (b) => {
          const r = await qos1Rate(targets[b].mtls, publishers, subscribers, {
            ...timing,
            window: args.window,
            payloadBytes: args.payload,
            drainTimeoutMs: DRAIN_TIMEOUT_MS,
          });
          log(`${b}: ${r.published.toLocaleString('en-US')} messages published, each PUBACKed and delivered`);
          return [r.acked, r.delivered];
        },
      },
    ];
    for (const [i, f] of figures.entries()) {
      const order: BrokerName[] = i % 2 === 0 ? ['iotdr', 'mosquitto'] : ['mosquitto', 'iotdr'];
      for (const broker of order) {
        log(`${f.figure} on ${broker}: ${args.warmup} s warm-up, ${args.seconds} s timed`);
        const results = await f.run(broker).catch((error: unknown) => {
          throw new Error(
            `${f.figure} on ${broker}: ${error instanceof Error ? error.message : String(error)}`,
            {
              cause: error,
            },
          );
        });
        results.forEach((result, k) => {
          rows.push({ figure: f.names?.[k] ?? f.figure, broker, inFlight: f.inFlight, result });
        });
      }
    }
    // Row order: per figure, iotdr then mosquitto.
    const figureOrder = [...new Set(rows.map((r) => r.figure))];
    rows.sort(
      (a, b) =>
        figureOrder.indexOf(a.figure) - figureOrder.indexOf(b.figure) || (a.broker === 'iotdr' ? -1 : 1),
    );

    log('stopping both brokers');
    const exit = await iotdr.stop();
    await mosquitto.stop();
    console.log('');
    console.log(table(rows));
    console.log('');
    for (const figure of figureOrder) {
      const q = ratio(rows, figure);
      console.log(`${figure}: iotdr ÷ mosquitto = ${q === undefined ? '—' : q.toFixed(2)}`);
    }
    console.log(
      `\nbroker CPU: the broker process's user + system CPU time over the timed part (100% = one core); load CPU: the bench process's (the mqtt.js clients).`,
    );
    if (exit !== 0) console.log(`\niotdr exited with ${String(exit)} on SIGTERM`);
    for (const line of printed(iotdr.output())) console.log(`iotdr printed ${line}`);
    for (const line of printed(mosquitto.output())) console.log(`mosquitto printed ${line}`);
    console.log(`\n1-min load average at the end: ${loadavg()[0]?.toFixed(2)}`);
    console.log(`total run time ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
    return exit === 0 ? 0 : 1;
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

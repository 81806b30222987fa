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
 *     PUBACKs and deliveries both counted, every message checked to arrive exactly once. Measured
 *     with nothing else on the broker, then with S subscriptions held by idle sessions (held.ts),
 *     of distinct exact topics and of distinct wildcard filters.
 *
 * iotdr runs in three setups side by side (setups.ts), each a real `iotdr region`: one process
 * without Redis; one process on its own Redis (`broker.workers: 1`, `regions[].redis`); N workers
 * on their own Redis (`broker.workers: N`). mosquitto runs from its binary with a configuration
 * written here. All get the same CA, device certificates and passwords. Each figure runs on every
 * broker in turn, the order rotating from figure to figure; mosquitto's figure is measured once per
 * figure and stands beside every setup's.
 *
 * Options: `--seconds S` timed part of each measurement (default 5), `--warmup S` (default 1),
 * `--concurrency N` connections in flight (default 16), `--publishers N` (default 4),
 * `--subscribers N` (default 1), `--window N` PUBLISHes in flight per publisher (default 16),
 * `--payload B` bytes per message (default 64), `--iotdr auto|region|broker` how the `single`
 * setup runs (default auto), `--mosquitto-nagle`, `--setups single,redis,workers` (default all
 * three), `--workers N` workers of the `workers` setup (default the machine's cores, at least 2),
 * `--figures mtls,resumed,token,qos1` (default all), `--held 0,10000,100000` subscriptions held
 * during QoS1 (default those three), `--kinds exact,wildcard` (default both), `--filters N`
 * subscriptions per held session (default 100).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findRedisServer, redisVersion } from '../../test/harness/redis.js';
import { Cleanup, machine, sqliteVersion } from '../registry/common.js';
import { type Args, parse } from './args.js';
import { type BenchDevice, type Fleet, HOLDER_POLICY, holderPolicy, provisionFleet } from './fleet.js';
import { HeldSubscriptions } from './held.js';
import { type Target, tlsParameters } from './load.js';
import { type Broker, elapsed, type Load, measureAll, mtls, token } from './measure.js';
import { findMosquitto, type RunningMosquitto, startMosquitto } from './mosquitto.js';
import { grouped, ratioLines, redisTable, table } from './report.js';
import { type RunningSetup, type Setup, setupOf, startSetup } from './setups.js';

const REGION = 'bench';
const ZONE = 'iot.test';
/** Credentials per connection in flight: a device rests between two of its connections. */
const CREDENTIALS_PER_SLOT = 4;

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

/** Provisions the bench's devices and, when subscriptions are held, the holders, into `seedDir`. */
async function provision(
  args: Args,
  seedDir: string,
  log: (l: string) => void,
): Promise<Load & { fleet: Fleet; holders: Fleet | undefined }> {
  const slots = args.concurrency * CREDENTIALS_PER_SLOT;
  const count = slots + args.publishers + args.subscribers;
  const common = { stateDir: seedDir, dbPath: join(seedDir, 'registry.db'), region: REGION, zone: ZONE };
  const t0 = performance.now();
  log(`provisioning ${count} devices (certificate from the embedded CA, policy, device token)`);
  const fleet = await provisionFleet({ ...common, prefix: 'dev', count });
  const sessions = args.figures.includes('qos1')
    ? Math.max(0, ...args.held.map((h) => HeldSubscriptions.sessionsFor(h, args.filters)))
    : 0;
  let holders: Fleet | undefined;
  if (sessions > 0) {
    log(`provisioning ${sessions} holders for the held subscriptions (policy ${HOLDER_POLICY})`);
    holders = await provisionFleet({
      ...common,
      prefix: 'hold',
      count: sessions,
      policy: { name: HOLDER_POLICY, document: holderPolicy() },
    });
  }
  log(`   provisioned in ${elapsed(t0)}`);
  return {
    fleet,
    holders,
    connecting: fleet.devices.slice(0, slots),
    publishers: fleet.devices.slice(slots, slots + args.publishers).map(mtls),
    subscribers: fleet.devices.slice(slots + args.publishers).map(mtls),
  };
}

/** mosquitto, then each iotdr setup on its own copy of `seedDir`; the brokers in that order. */
async function startBrokers(
  args: Args,
  setups: readonly Setup[],
  dirs: { base: string; seed: string },
  fleets: { fleet: Fleet; holders: Fleet | undefined },
  bin: { mosquitto: string; passwd: string },
  cleanup: Cleanup,
  log: (l: string) => void,
): Promise<{ brokers: Broker[]; mosquitto: RunningMosquitto }> {
  const { fleet, holders } = fleets;
  const holderCredentials = (holders?.devices ?? []).map(token);
  log('starting mosquitto');
  const mosquittoDir = join(dirs.base, 'mosquitto');
  await mkdir(mosquittoDir);
  const passwords = [...fleet.devices, ...(holders?.devices ?? [])].map(
    (d) => [d.thingName, d.token] as const,
  );
  const mosquitto = await startMosquitto(
    bin,
    mosquittoDir,
    {
      caPem: fleet.caPem,
      certPem: fleet.server.certPem,
      keyPem: fleet.server.keyPem,
      passwords: new Map(passwords),
    },
    cleanup,
    // Both brokers send without Nagle's delay, as iotdr's listener does; --mosquitto-nagle shows its default.
    !args['mosquitto-nagle'],
  );
  console.log(
    `mosquitto: ${mosquitto.version} (pid ${mosquitto.pid}), configuration in bench/broker/mosquitto.ts`,
  );
  const target = (port: number, pid: number, redisPid?: number): Target => ({
    port,
    caPem: fleet.caPem,
    servername: `mqtt.${ZONE}`,
    pid,
    ...(redisPid === undefined ? {} : { redisPid }),
  });
  const brokers: Broker[] = [];
  const add = (label: string, targets: Broker['targets'], pids: number[], setup?: RunningSetup) => {
    const held = new HeldSubscriptions(targets.token, holderCredentials, args.filters);
    brokers.push({ label, targets, held, pids, ...(setup === undefined ? {} : { setup }) });
  };
  add(
    'mosquitto',
    { mtls: target(mosquitto.mtlsPort, mosquitto.pid), token: target(mosquitto.passwordPort, mosquitto.pid) },
    [mosquitto.pid],
  );
  for (const setup of setups) {
    const running = await startSetup(setup, {
      seedDir: dirs.seed,
      dir: join(dirs.base, `iotdr-${setup.name}`),
      region: REGION,
      zone: ZONE,
      cleanup,
      mode: args.iotdr,
      log,
    });
    const { iotdr, redis } = running;
    const redisPid = redis?.pid;
    console.log(
      `iotdr:   ${setup.label}: ${iotdr.command} (pid ${iotdr.pid}${redisPid ? `, Redis pid ${redisPid}` : ''})`,
    );
    add(
      setup.label,
      {
        mtls: target(iotdr.mtlsPort, iotdr.pid, redisPid),
        token: target(iotdr.tokenPort, iotdr.pid, redisPid),
      },
      redisPid === undefined ? [iotdr.pid] : [iotdr.pid, redisPid],
      running,
    );
  }
  return { brokers, mosquitto };
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
  const setups = args.setups.map((name) => setupOf(name, args.workers));
  if (setups.some((s) => s.redis) && findRedisServer() === undefined) {
    console.error(
      'bench:broker needs redis-server for --setups redis and workers (apt-get install redis-server), or --setups single',
    );
    return 1;
  }

  const started = performance.now();
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
    const seed = join(base, 'seed');
    await mkdir(seed);
    console.log(machine().join('\n'));
    console.log(`load:    ${loadavg()[0]?.toFixed(2)} (1-min load average at the start)`);
    console.log(`sqlite:  ${sqliteVersion(base)} (better-sqlite3)`);
    if (setups.some((s) => s.redis)) console.log(`redis:   ${redisVersion()}`);

    const load = await provision(args, seed, log);
    const { brokers, mosquitto } = await startBrokers(args, setups, { base, seed }, load, bin, cleanup, log);
    const first = load.connecting[0] as BenchDevice;
    for (const b of brokers) {
      const m = await tlsParameters(b.targets.mtls, mtls(first));
      const t = await tlsParameters(b.targets.token, token(first));
      console.log(`tls:     ${b.label}: mTLS ${m}; token ${t}`);
    }

    const { rows, redisRows } = await measureAll(brokers, args, load, log);

    log('stopping the brokers');
    const exits: string[] = [];
    for (const b of brokers) {
      const exit = await b.setup?.iotdr.stop();
      if (exit !== undefined && exit !== 0)
        exits.push(`${b.label}: iotdr exited with ${String(exit)} on SIGTERM`);
    }
    await mosquitto.stop();

    // Per figure and held subscriptions: the iotdr setups in the order asked, then mosquitto.
    const labels = [...setups.map((s) => s.label), 'mosquitto'];
    const sorted = grouped(rows, labels);
    console.log(`\n${table(sorted)}\n`);
    for (const line of ratioLines(sorted)) console.log(line);
    if (redisRows.length > 0) console.log(`\n${redisTable(grouped(redisRows, labels))}`);
    console.log(
      "\nbroker CPU: the broker's user + system CPU time over the timed part (an iotdr region's process with its workers; 100% = one core); Redis CPU: its redis-server's; load CPU: the bench process's (the mqtt.js clients).",
    );
    if (redisRows.length > 0)
      console.log(
        "Redis channels and patterns: distinct ones Redis held during the QoS1 run (INFO stats: the link's, the QoS1 subscriber's and the held ones); commands, µs, PUBLISH per message and µs per PUBLISH: Redis's commandstats over the QoS1 run (warm-up and drain included), per message published.",
      );
    for (const line of exits) console.log(`\n${line}`);
    for (const b of brokers) {
      const output = b.setup ? b.setup.iotdr.output() : mosquitto.output();
      for (const line of printed(output)) console.log(`${b.label} printed ${line}`);
    }
    console.log(`\n1-min load average at the end: ${loadavg()[0]?.toFixed(2)}`);
    console.log(`total run time ${elapsed(started)}`);
    return exits.length === 0 ? 0 : 1;
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

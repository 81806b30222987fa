/**
 * What a region's health costs and tells under a reconnect storm (`npm run bench:health`): one
 * region as its own process, first quiet, then with a storm of registered devices into its broker
 * from another process (each reconnecting as soon as it is answered; test/harness/storm-child.ts).
 * Every 250 ms the bench asks, as a checker would:
 *
 * - `GET /health` (every checkpoint, the broker round trip over its kept session included): time to
 *   the answer, and the round trip the region measured;
 * - a fresh mutual-TLS connect to CONNACK from the region's own address (exempt from the handshake
 *   line, as the health identity is): what every broker probe paid before it kept its session.
 *
 * Options: `--in-flight N` (storm connections at once, default 400), `--seconds S` (each phase,
 * default 20). Prints a Markdown table per phase: p50 / p99 / max and how many answers were later
 * than the checkers' default timeout (1,000 ms).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type IClientOptions } from 'mqtt';
import { freePort, killGroup, ROOT, spawnIotdr, waitForHttp } from '../../test/harness/process.js';
import { handshakeLine, provisionDevices, startStorm, stormConfig } from '../../test/harness/storm.js';
import { machine } from '../registry/common.js';

const ADDRESS = '127.0.0.51';
const SAMPLE_MS = 250;
/** The checkers' default timeout: an answer later than this is slow. */
const LATE_MS = 1000;

interface Phase {
  health: number[];
  roundTrip: number[];
  connect: number[];
  connectFailures: number;
  waitingMax: number;
  healthFailures: number;
}

const percentile = (values: number[], p: number): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
};
const ms = (v: number) => (Number.isNaN(v) ? '—' : Math.round(v).toLocaleString('en-US'));
const spread = (values: number[]) =>
  `${ms(percentile(values, 50))} / ${ms(percentile(values, 99))} / ${ms(Math.max(...values))}`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'in-flight': { type: 'string', default: '400' },
      seconds: { type: 'string', default: '20' },
    },
  });
  const inFlight = Number(values['in-flight']);
  const phaseMs = Number(values.seconds) * 1000;
  const home = await mkdtemp(join(tmpdir(), 'iotdr-bench-health-'));
  const [apiPort, mqttPort] = [await freePort(ADDRESS), await freePort(ADDRESS)];
  const config = stormConfig([{ name: 'us-east', address: ADDRESS, apiPort, mqttPort }], {
    replication: { enabled: false },
  });
  const configPath = join(home, 'iotdr.yaml');
  await writeFile(configPath, JSON.stringify(config));
  const region = spawnIotdr(
    ['region', '--name', 'us-east', '--config', configPath],
    { IOTDR_HOME: home },
    ROOT,
    {
      group: true,
    },
  );
  try {
    const api = `http://${ADDRESS}:${apiPort}`;
    await waitForHttp(`${api}/livez`, region, 60_000);
    const [probe, ...storm] = await provisionDevices(api, home, [
      'bench-probe',
      ...Array.from({ length: 20 }, (_, i) => `storm-${i}`),
    ]);
    if (!probe) throw new Error('no probe device');
    const caPem = await readFile(join(home, 'pki', 'ca.pem'), 'utf8');

    const freshConnect = async (): Promise<number> => {
      const started = performance.now();
      // From the region's own address, as the health identity connects: exempt from the line.
      const options: IClientOptions & { localAddress: string } = {
        localAddress: ADDRESS,
        protocol: 'mqtts',
        host: ADDRESS,
        port: mqttPort,
        servername: 'mqtt.iot.test',
        ca: caPem,
        cert: probe.certPem,
        key: probe.keyPem,
        clientId: probe.clientId,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        protocolVersion: 4,
      };
      const client = await mqtt.connectAsync(options);
      const took = performance.now() - started;
      client.end(true);
      return took;
    };
    // Waiting in the broker's line or still in the kernel's accept queue in front of it.
    const waiting = async (): Promise<number> => {
      const line = await handshakeLine(`${api}/metrics`, { host: ADDRESS, port: mqttPort });
      return line === null ? 0 : line.waiting + line.accepting;
    };

    const measure = async (until: () => boolean): Promise<Phase> => {
      const phase: Phase = {
        health: [],
        roundTrip: [],
        connect: [],
        connectFailures: 0,
        waitingMax: 0,
        healthFailures: 0,
      };
      const connects = (async () => {
        while (until()) {
          const at = performance.now();
          try {
            phase.connect.push(await freshConnect());
          } catch {
            phase.connectFailures++;
          }
          await new Promise((r) => setTimeout(r, Math.max(0, at + SAMPLE_MS - performance.now())));
        }
      })();
      while (until()) {
        const at = performance.now();
        try {
          const res = await fetch(`${api}/health`, { signal: AbortSignal.timeout(10_000) });
          const body = (await res.json()) as {
            checks: Record<string, Array<{ status: string; observedValue: unknown }>>;
          };
          phase.health.push(performance.now() - at);
          const rt = body.checks['broker:roundTrip']?.[0];
          if (rt?.status === 'pass' && typeof rt.observedValue === 'number')
            phase.roundTrip.push(rt.observedValue);
          if (res.status !== 200) phase.healthFailures++;
          phase.waitingMax = Math.max(phase.waitingMax, await waiting());
        } catch {
          phase.healthFailures++;
        }
        await new Promise((r) => setTimeout(r, Math.max(0, at + SAMPLE_MS - performance.now())));
      }
      await connects;
      return phase;
    };

    process.stderr.write(`quiet for ${phaseMs / 1000} s (load ${loadavg()[0]?.toFixed(2)})\n`);
    const quietEnd = Date.now() + phaseMs;
    const quiet = await measure(() => Date.now() < quietEnd);

    process.stderr.write(`storm of ${inFlight} connections at once for ${phaseMs / 1000} s\n`);
    const running = await startStorm(
      {
        host: ADDRESS,
        port: mqttPort,
        servername: 'mqtt.iot.test',
        caPem,
        devices: storm,
        inFlight,
        durationMs: phaseMs + 5000,
        connectTimeoutMs: 10_000,
      },
      home,
    );
    // The storm's first seconds are its own start; measure once the line has formed.
    const formed = Date.now() + 60_000;
    while (Date.now() < formed && (await waiting()) === 0) await new Promise((r) => setTimeout(r, 100));
    const stormEnd = Date.now() + phaseMs;
    const stormy = await measure(() => Date.now() < stormEnd);
    const result = await running.result;

    console.log(machine().join('\n'));
    console.log('');
    console.log(
      `Storm: ${inFlight} connections at once from one process, 20 registered devices, ${result.connacks.toLocaleString('en-US')} CONNACKs in ${(phaseMs + 5000) / 1000} s (${Math.round(result.connacks / ((phaseMs + 5000) / 1000))}/s), ${result.timeouts} timed out, ${result.errors} closed early.`,
    );
    console.log('');
    const head = [
      'phase',
      'handshakes waiting, broker + kernel (max)',
      'GET /health p50 / p99 / max (ms)',
      `/health over ${LATE_MS} ms`,
      'broker:roundTrip, kept session, p50 / p99 / max (ms)',
      'fresh mTLS connect to CONNACK p50 / p99 / max (ms)',
      `connects over ${LATE_MS} ms or failed`,
    ];
    console.log(`| ${head.join(' | ')} |`);
    console.log(`|${head.map(() => '---').join('|')}|`);
    for (const [name, p] of [
      ['quiet', quiet],
      ['storm', stormy],
    ] as const) {
      const late = p.health.filter((v) => v > LATE_MS).length + p.healthFailures;
      const slowConnects = p.connect.filter((v) => v > LATE_MS).length + p.connectFailures;
      console.log(
        `| ${[
          name,
          String(p.waitingMax),
          spread(p.health),
          `${late} of ${p.health.length + p.healthFailures}`,
          spread(p.roundTrip),
          spread(p.connect),
          `${slowConnects} of ${p.connect.length + p.connectFailures}`,
        ].join(' | ')} |`,
      );
    }
  } finally {
    killGroup(region);
    await rm(home, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

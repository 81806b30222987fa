/**
 * Queries per second of the built-in DNS server and of PowerDNS Authoritative (gsqlite3 backend,
 * default caches) serving the same record, on the same machine, in one run, driven by the same
 * UDP load generator. Prints the machine and a Markdown table on stdout, progress on stderr.
 *
 *   npm run bench:dns                          # = tsx bench/dns/run.ts
 *   npm run bench:dns -- --seconds 2 --inflight 32
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PowerDnsProvider } from '../../src/dns/index.js';
import { type RunningPowerDns, startPowerDns } from '../../test/harness/pdns.js';
import { type LoadResult, runLoad } from './load.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const ZONE = 'iot.test';
const NAME = `mqtt.${ZONE}`;
const ADDRESS = '127.0.0.11';

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function startBuiltin(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'bench/dns/server.ts'), '--zone', ZONE, '--address', ADDRESS],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`built-in server exited with ${code}`)));
  });
  return { port, child };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

function row(name: string, r: LoadResult): string {
  const cpu = r.serverCpu === undefined ? 'n/a' : `${Math.round(r.serverCpu * 100)}%`;
  const perCpu = r.serverCpu ? Math.round(r.qps / r.serverCpu).toLocaleString('en-US') : 'n/a';
  return `| ${name} | ${Math.round(r.qps).toLocaleString('en-US')} | ${cpu} | ${perCpu} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.answered.toLocaleString('en-US')} | ${r.lost} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: 'string', default: '5' }, inflight: { type: 'string', default: '64' } },
  });
  const seconds = Number(values.seconds);
  const inflight = Number(values.inflight);
  if (!(seconds > 0) || !Number.isInteger(inflight) || inflight < 1 || inflight > 10_000) {
    throw new Error('--seconds must be > 0 and --inflight an integer from 1 to 10000');
  }
  const load = { name: NAME, expected: ADDRESS, inflight, warmupMs: 1000, durationMs: seconds * 1000 };
  const began = Date.now();
  const rows: string[] = [];
  let builtin: ChildProcess | undefined;
  let pdns: RunningPowerDns | undefined;
  const cleanup = async (): Promise<void> => {
    if (builtin) await stopChild(builtin);
    await pdns?.stop();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    log('built-in server: starting');
    const started = await startBuiltin();
    builtin = started.child;
    log(`built-in server: ${inflight} queries in flight for ${seconds} s`);
    const own = await runLoad({
      ...load,
      port: started.port,
      ...(builtin.pid ? { serverPid: builtin.pid } : {}),
    });
    await stopChild(builtin);
    builtin = undefined;
    if (own.wrong > 0) throw new Error(`built-in server gave ${own.wrong} wrong answers`);
    rows.push(row('iotdr built-in (1 Node.js process)', own));

    log('PowerDNS: starting');
    const p = await startPowerDns();
    if ('skipped' in p) {
      rows.push(`| PowerDNS | skipped: ${p.skipped} | | | | | | |`);
    } else {
      pdns = p;
      await new PowerDnsProvider({ url: p.url, apiKey: p.apiKey, zone: ZONE, ttl: 5 }).apply({
        region: 'primary',
        address: ADDRESS,
        epoch: 1,
      });
      log(`PowerDNS: ${inflight} queries in flight for ${seconds} s`);
      const theirs = await runLoad({ ...load, port: p.dnsPort, serverPid: p.pid });
      if (theirs.wrong > 0) throw new Error(`PowerDNS gave ${theirs.wrong} wrong answers`);
      rows.push(row('PowerDNS 4.7 Authoritative (gsqlite3, default caches, 3 receiver threads)', theirs));
    }
  } finally {
    await cleanup();
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write(
    [
      `Machine: ${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version}`,
      `Load: UDP, A ${NAME}, ${inflight} queries in flight, 1 s warm-up, ${seconds} s timed, every answer checked`,
      '',
      '| Server | queries/s | server CPU | queries per CPU-second | p50 ms | p99 ms | answered | lost |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      `Run time: ${((Date.now() - began) / 1000).toFixed(1)} s`,
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});

/**
 * HTTP write throughput of a real region: `iotdr region` runs as a child process, the load comes
 * from this process over keep-alive connections to 127.0.0.1, every request a
 * `PUT /v1/things/{name}` of a new thing with the admin token. Over HTTPS with the region's site
 * certificate (`links.mode: mutual-tls`, the default) or plain HTTP (`plain-loopback`), so the cost
 * of TLS is measured in the same run.
 */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND, PostgresStore, type RegistryStore, SqliteStore } from '../../src/registry/index.js';
import { freePort, type IotdrProcess, spawnIotdr, waitForHttp } from '../../test/harness/process.js';
import { type Cleanup, check, drive, type Figure, percentile } from './common.js';

export type HttpStore = { engine: 'sqlite' } | { engine: 'postgres'; url: string; schema: string };

export interface HttpBenchOptions {
  store: HttpStore;
  setting: string;
  /** How the region serves its API: HTTPS with its site certificate, or plain loopback HTTP. */
  links: 'mutual-tls' | 'plain-loopback';
  /** Requests in flight at once, each on its own keep-alive connection. */
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  maxOps: number;
  target?: number;
  cleanup: Cleanup;
}

const HOST = '127.0.0.1';
const REGION = 'us-east';
/** How long the region may take to start (tsx compiles the sources on first start). */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

interface Answer {
  status: number;
  body: string;
}

/** Counts the connections a client opened, to show keep-alive held. */
interface Connections {
  opened: number;
}

type Agent = HttpAgent | HttpsAgent;

function call(
  connections: Connections,
  agent: Agent,
  port: number,
  method: string,
  path: string,
  token: string,
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { authorization: `Bearer ${token}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const request = agent instanceof HttpsAgent ? httpsRequest : httpRequest;
    const req = request({ host: HOST, port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
    req.on('error', reject);
    req.once('socket', () => {
      if (!req.reusedSocket) connections.opened++;
    });
    req.end(body);
  });
}

async function stopRegion(proc: IotdrProcess): Promise<number | NodeJS.Signals> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for the region's /livez; over HTTPS once its CA exists (the region makes it at start). */
async function waitForRegion(url: string, proc: IotdrProcess, home: string, secure: boolean): Promise<void> {
  if (!secure) return waitForHttp(url, proc, START_TIMEOUT_MS);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`the region exited:\n${proc.output()}`);
    const ca = await readFile(join(home, 'pki', 'ca.pem'), 'utf8').catch(() => undefined);
    if (ca !== undefined) {
      const status = await new Promise<number>((resolve) => {
        const req = httpsRequest(url, { ca, timeout: 1000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => resolve(0));
        req.on('timeout', () => req.destroy());
        req.end();
      });
      if (status === 200) return;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The store the region wrote, opened by this process to count what really landed. */
function openSameStore(store: HttpStore, sqlitePath: string): RegistryStore {
  return store.engine === 'sqlite'
    ? new SqliteStore({ path: sqlitePath })
    : new PostgresStore({ connectionString: store.url, schema: store.schema, poolSize: 1 });
}

export async function benchHttpWrites(options: HttpBenchOptions): Promise<Figure> {
  const { cleanup } = options;
  const home = await mkdtemp(join(tmpdir(), 'iotdr-bench-http-'));
  const removeHome = cleanup.defer(`remove ${home}`, () => rm(home, { recursive: true, force: true }));
  const sqlitePath = join(home, 'registry.db');
  const [apiPort, mqttPort] = [await freePort(), await freePort()];
  const store =
    options.store.engine === 'sqlite'
      ? { engine: 'sqlite', path: sqlitePath }
      : { engine: 'postgres', url: options.store.url, schema: options.store.schema };
  const config = {
    logging: { level: 'warn' },
    links: { mode: options.links },
    regions: [
      {
        name: REGION,
        priority: 1,
        address: HOST,
        api: { port: apiPort },
        cnc: { port: 0 },
        mqtt: { port: mqttPort },
        store,
      },
    ],
  };
  const configFile = join(home, 'iotdr.yaml');
  // JSON is YAML.
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);

  const proc = spawnIotdr(['region', '--name', REGION, '--config', configFile], { IOTDR_HOME: home });
  const stop = cleanup.defer(`stop region (pid ${proc.child.pid})`, async () => {
    await stopRegion(proc);
  });
  const secure = options.links === 'mutual-tls';
  const base = `${secure ? 'https' : 'http'}://${HOST}:${apiPort}`;
  await waitForRegion(`${base}/livez`, proc, home, secure);
  const token = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();

  // A person's client: the platform's CA to verify the region, a bearer token, no client certificate.
  const agent = secure
    ? new HttpsAgent({
        keepAlive: true,
        maxSockets: options.concurrency,
        ca: await readFile(join(home, 'pki', 'ca.pem'), 'utf8'),
      })
    : new HttpAgent({ keepAlive: true, maxSockets: options.concurrency });
  const destroyAgent = cleanup.defer('close HTTP agent', () => agent.destroy());
  const connections: Connections = { opened: 0 };
  const livez = async (): Promise<{ lastSeq: number; store: string }> => {
    const r = await call(connections, agent, apiPort, 'GET', '/livez', token);
    check(r.status === 200, `GET /livez answered ${r.status}: ${r.body}`);
    return JSON.parse(r.body) as { lastSeq: number; store: string };
  };
  const before = await livez();
  check(
    before.store === options.store.engine,
    `the region runs on ${before.store}, not ${options.store.engine}`,
  );

  let failures = 0;
  let firstFailure = '';
  const put = (prefix: string) => async (i: number) => {
    const name = `${prefix}-${i}`;
    const body = JSON.stringify({
      attributes: { site: `site-${i % 97}`, model: 'x2', serial: `SN${i.toString().padStart(9, '0')}` },
    });
    const r = await call(connections, agent, apiPort, 'PUT', `/v1/things/${name}`, token, body);
    // Every name is new, so every answer must be 201 Created; anything else is counted and the
    // run fails below, after the load, so one slow error does not skew the timing of the rest.
    if (r.status !== 201) {
      failures++;
      firstFailure ||= `PUT /v1/things/${name} answered ${r.status}: ${r.body.slice(0, 300)}`;
    }
  };
  const warm = await drive(options.concurrency, options.warmupMs, options.maxOps, put('warm'));
  const connectionsInWarmup = connections.opened;
  const timed = await drive(options.concurrency, options.durationMs, options.maxOps, put('thing'));
  check(failures === 0, `${failures} non-201 answers; the first: ${firstFailure}`);
  check(
    connections.opened === connectionsInWarmup,
    `${connections.opened - connectionsInWarmup} connections opened during the timed part: keep-alive is not holding`,
  );

  // Every acknowledged write is in the change log and in the store the region wrote.
  const written = warm.ops + timed.ops;
  const after = await livez();
  check(
    after.lastSeq - before.lastSeq === written,
    `the change log grew by ${after.lastSeq - before.lastSeq}, ${written} writes were acknowledged`,
  );
  await destroyAgent();
  const exit = await stopRegion(proc);
  await stop();
  check(exit === 0, `the region exited with ${exit}:\n${proc.output()}`);
  // Anything the region printed at level warn or above (and Node's own warnings), once per line.
  const output = [...new Set(proc.output().split('\n'))]
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('(Use `node --trace-warnings'))
    .map((line) => (line.length > 160 ? `${line.slice(0, 160)}…` : line));
  const reopened = openSameStore(options.store, sqlitePath);
  try {
    await reopened.init();
    const things = await reopened.count(KIND.thing);
    check(things === written, `${things} things in the store, ${written} writes acknowledged`);
  } finally {
    await reopened.close();
  }
  await removeHome();

  return {
    figure: 'HTTP writes (PUT /v1/things)',
    setting: options.setting,
    concurrency: options.concurrency,
    ops: timed.ops,
    seconds: timed.seconds,
    perSecond: timed.ops / timed.seconds,
    p50Ms: percentile(timed.latenciesMs, 0.5),
    p99Ms: percentile(timed.latenciesMs, 0.99),
    ...(options.target === undefined ? {} : { target: options.target }),
    note: [`${connections.opened} keep-alive connections, all opened before the timed part`, ...output]
      .map((line, i) => (i === 0 ? line : `  region printed: ${line}`))
      .join('\n'),
  };
}

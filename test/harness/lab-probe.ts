/**
 * The test's hands inside a network lab: a process run in a lab host (`LabProbe` starts it) that
 * does what the test asks over stdin, one JSON command per line, and answers on stdout, one JSON
 * line each. A lab is cut off from the test's own namespace, so every HTTP request and DNS query of
 * a partition test goes through here.
 *
 * Commands: `{ id, op: 'http', url, method?, headers?, body? }` → `{ id, status, body }`;
 * `{ id, op: 'dns', server, name }` → `{ id, addresses }`; `{ id, op: 'sample', dns: [server],
 * urls: [url], headers?, everyMs }` starts sampling: every `everyMs` one line
 * `{ op: 'sample', at, dns: { server: address | error }, states: { url: state | error } }`;
 * `{ id, op: 'stop-sampling' }`. Errors answer `{ id, error }`.
 */
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createInterface } from 'node:readline';

const caFile = process.argv[2];
const agent = new Agent({ keepAlive: true, ca: caFile ? readFileSync(caFile, 'utf8') : undefined });

type Command = {
  id: number;
  op: 'http' | 'dns' | 'sample' | 'stop-sampling';
  url?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  server?: string;
  name?: string;
  dns?: string[];
  urls?: string[];
  everyMs?: number;
};

function send(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function http(
  url: string,
  method = 'GET',
  headers: Record<string, string> = {},
  body?: unknown,
  timeoutMs = 2000,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        agent,
        headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function resolve(server: string, name: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 400, tries: 1 });
  resolver.setServers([server]);
  return resolver.resolve4(name);
}

let sampling: NodeJS.Timeout | undefined;

async function sample(command: Command): Promise<void> {
  const at = Date.now();
  const dns: Record<string, string> = {};
  const states: Record<string, unknown> = {};
  await Promise.all([
    ...(command.dns ?? []).map(async (server) => {
      dns[server] = await resolve(server, command.name ?? 'mqtt.iot.test').then(
        (a) => a.join(','),
        (e: Error) => `error: ${e.message}`,
      );
    }),
    ...(command.urls ?? []).map(async (url) => {
      states[url] = await http(url, 'GET', command.headers, undefined, 800).then(
        (r) => {
          const s = r.body as { activeRegion?: string; epoch?: number; control?: { leads?: boolean } };
          return r.status === 200
            ? { activeRegion: s.activeRegion, epoch: s.epoch, leads: s.control?.leads }
            : { status: r.status };
        },
        (e: Error) => ({ error: e.message }),
      );
    }),
  ]);
  send({ op: 'sample', at, dns, states });
}

async function handle(command: Command): Promise<void> {
  try {
    switch (command.op) {
      case 'http':
        send({
          id: command.id,
          ...(await http(command.url ?? '', command.method, command.headers, command.body)),
        });
        return;
      case 'dns':
        send({ id: command.id, addresses: await resolve(command.server ?? '', command.name ?? '') });
        return;
      case 'sample': {
        if (sampling) clearInterval(sampling);
        let busy = false;
        sampling = setInterval(() => {
          if (busy) return;
          busy = true;
          void sample(command).finally(() => {
            busy = false;
          });
        }, command.everyMs ?? 100);
        send({ id: command.id, ok: true });
        return;
      }
      case 'stop-sampling':
        if (sampling) clearInterval(sampling);
        sampling = undefined;
        send({ id: command.id, ok: true });
        return;
    }
  } catch (error) {
    send({ id: command.id, error: (error as Error).message });
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  void handle(JSON.parse(line) as Command);
});
process.stdin.on('end', () => process.exit(0));
send({ op: 'ready' });

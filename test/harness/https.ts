/**
 * The tests' HTTPS client. Every API of the platform is served over TLS with a certificate from the
 * CA of its state directory; a test reads those APIs as a person would, with `fetch` and a bearer
 * token, trusting that CA. Node's fetch takes no CA, so tests import this `fetch` instead: it sends
 * https: requests through node's client with the CAs the tests' state directories hold (found under
 * the temporary directory, `iotdr-*`, as the tests make them, or given with `trustCa`), and leaves
 * every other request to node's own fetch. Certificates are verified as usual: a server whose chain
 * none of those CAs signed is refused. It is imported, never installed globally: the platform's own
 * code must bring its own trust (a site agent, a CA), and a test must see it when it does not.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

const trusted = new Map<string, string>();

/** Trusts a CA (PEM) for the rest of the test file. */
export function trustCa(pem: string): void {
  trusted.set(pem, pem);
}

/** Trusts the CA of a state directory (`<dir>/pki/ca.pem`), when it has one. */
export function trustStateDir(stateDir: string): void {
  const pem = readIfPresent(join(stateDir, 'pki', 'ca.pem'));
  if (pem !== undefined) trustCa(pem);
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The CAs of the state directories the tests made under the temporary directory, two levels deep. */
function scanTemporaryStateDirs(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith('iotdr'));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(tmpdir(), entry);
    trustStateDir(dir);
    let inner: string[] = [];
    try {
      if (!statSync(dir).isDirectory()) continue;
      inner = readdirSync(dir);
    } catch {
      continue;
    }
    for (const sub of inner) trustStateDir(join(dir, sub));
  }
}

const nodeFetch = globalThis.fetch;
const NULL_BODY = new Set([101, 204, 205, 304]);

function httpsFetch(url: URL, init: RequestInit | undefined, retry: boolean): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers = new Headers(init?.headers);
    const req = request(
      url,
      {
        method: init?.method ?? 'GET',
        headers: Object.fromEntries(headers.entries()),
        ca: [...trusted.values()],
        ...(init?.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        const answer = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value === undefined) continue;
          for (const v of Array.isArray(value) ? value : [value]) answer.append(name, v);
        }
        const status = res.statusCode ?? 0;
        const body =
          NULL_BODY.has(status) || init?.method === 'HEAD' ? null : (Readable.toWeb(res) as ReadableStream);
        if (body === null) res.resume();
        resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers: answer }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A CA made after the last scan: look again once.
      if (retry && /CERT|certificate/i.test(`${error.code} ${error.message}`)) {
        scanTemporaryStateDirs();
        httpsFetch(url, init, false).then(resolve, reject);
        return;
      }
      reject(new TypeError('fetch failed', { cause: error }));
    });
    const body = init?.body;
    if (body === undefined || body === null) req.end();
    else if (typeof body === 'string' || body instanceof Uint8Array) req.end(body);
    else reject(new TypeError('the tests send string or byte bodies only'));
  });
}

/** `fetch`, trusting the CAs of the tests' state directories for https: URLs. */
export const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (url.protocol !== 'https:' || input instanceof Request) return nodeFetch(input, init);
  return httpsFetch(url, init, true);
}) as typeof globalThis.fetch;

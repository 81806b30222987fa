/**
 * The control API over several control nodes, against real HTTP servers: a node that is down, one
 * that answers 503 (nobody leads) and one that answers. A call goes past the first two to the third
 * and stays with it; an error answer is the call's; only when every node failed does the call fail,
 * naming each node's failure; the caller's signal ends it wherever it is.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { waitUntil } from '../../src/common/index.js';
import { ControlClient, type ControlEndpoint, ControlUnreachableError } from '../../src/failover/index.js';
import { CallError, defineRoute, problemSchema } from '../../src/http/index.js';
import { freePort } from '../harness/process.js';

const TOKEN = 'reader-token';
const WHO = defineRoute({
  method: 'GET',
  url: '/v1/who',
  responses: { 200: z.object({ node: z.string() }), 409: problemSchema, 503: problemSchema },
});

function problemBody(res: ServerResponse, status: number, code: string): void {
  res
    .writeHead(status, { 'content-type': 'application/problem+json' })
    .end(JSON.stringify({ status, code, detail: `${code} here`, title: 'x', type: 'about:blank' }));
}

/** A node answering every request with `answer`; counts the requests it took. */
async function node(
  name: string,
  answer: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ endpoint: ControlEndpoint; hits: () => number; server: Server }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    answer(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { endpoint: { name, url: `http://127.0.0.1:${port}` }, hits: () => hits, server };
}

describe('ControlClient', () => {
  let down: ControlEndpoint;
  let busy: Awaited<ReturnType<typeof node>>;
  let up: Awaited<ReturnType<typeof node>>;
  let conflict: Awaited<ReturnType<typeof node>>;
  let hung: Awaited<ReturnType<typeof node>>;
  const authorizations: Array<string | undefined> = [];

  beforeAll(async () => {
    down = { name: 'ctl-a', url: `http://127.0.0.1:${await freePort()}` };
    busy = await node('ctl-b', (_, res) => problemBody(res, 503, 'IOTDR_FAILOVER_NO_LEADER'));
    up = await node('ctl-c', (req, res) => {
      authorizations.push(req.headers.authorization);
      if (req.url === '/v1/who')
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"node":"ctl-c"}');
      else res.writeHead(404, { 'content-type': 'text/plain' }).end('no such path');
    });
    conflict = await node('ctl-d', (_, res) => problemBody(res, 409, 'IOTDR_FAILOVER_NO_OVERRIDE'));
    // Takes the request and never answers.
    hung = await node('ctl-e', () => undefined);
  });

  afterAll(async () => {
    for (const n of [busy, up, conflict, hung]) {
      n.server.closeAllConnections();
      n.server.close();
    }
  });

  it('goes past a node that is down and one that answers 503, and stays with the node that answered', async () => {
    const control = new ControlClient([down, busy.endpoint, up.endpoint], TOKEN);
    expect(control.current.name).toBe('ctl-a');
    const busyBefore = busy.hits();
    expect(await control.request(WHO)).toEqual({ node: 'ctl-c' });
    expect(control.current).toMatchObject({ name: 'ctl-c', url: up.endpoint.url });
    expect(busy.hits()).toBe(busyBefore + 1);
    // The next call goes to the node that answered last, not round the dead ones again.
    expect(await control.request(WHO)).toEqual({ node: 'ctl-c' });
    expect(busy.hits()).toBe(busyBefore + 1);
    expect(authorizations.at(-1)).toBe(`Bearer ${TOKEN}`);
  });

  it('sends a raw request the same way, and answers any status but 502 and 503 as it came', async () => {
    const control = new ControlClient([down, busy.endpoint, up.endpoint], TOKEN);
    const answer = await control.send({ method: 'GET', path: '/v1/who', timeoutMs: 2000 });
    expect(answer).toMatchObject({ status: 200, text: '{"node":"ctl-c"}' });
    const missing = await control.send({
      method: 'GET',
      path: '/v1/elsewhere',
      headers: { authorization: 'Bearer the-callers-own' },
      timeoutMs: 2000,
    });
    expect(missing).toMatchObject({ status: 404, text: 'no such path' });
    // The caller's Authorization replaces the client's token.
    expect(authorizations.at(-1)).toBe('Bearer the-callers-own');
  });

  it('gives an error answer to the caller: the call does not go on to the next node', async () => {
    const control = new ControlClient([conflict.endpoint, up.endpoint], TOKEN);
    const upBefore = up.hits();
    const error = await control.request(WHO).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallError);
    expect((error as CallError).code).toBe('IOTDR_FAILOVER_NO_OVERRIDE');
    expect(up.hits()).toBe(upBefore);
    expect(control.current.name).toBe('ctl-d');
  });

  it('fails only when every node failed, naming each one and why', async () => {
    const control = new ControlClient([down, busy.endpoint, hung.endpoint], TOKEN);
    for (const call of [
      () => control.request(WHO, { timeoutMs: 300 }),
      () => control.send({ method: 'GET', path: '/v1/who', timeoutMs: 300 }),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ControlUnreachableError);
      const failed = error as ControlUnreachableError;
      expect(failed.code).toBe('IOTDR_FAILOVER_CONTROL_UNREACHABLE');
      expect(failed.failures.map((f) => [f.node, f.failure.type])).toEqual([
        ['ctl-a', 'unreachable'],
        ['ctl-b', 'refused'],
        ['ctl-e', 'timeout'],
      ]);
      expect(failed.someTimedOut).toBe(true);
      expect(failed.message).toContain(`ctl-a at ${down.url}: ECONNREFUSED`);
      expect(failed.message).toContain('ctl-b at');
      expect(failed.message).toContain('HTTP 503 IOTDR_FAILOVER_NO_LEADER');
      expect(failed.message).toContain('ctl-e at');
      expect(failed.message).toContain('no answer within 300 ms');
      // Where it starts next time does not change: no node answered.
      expect(control.current.name).toBe('ctl-a');
    }
  });

  it("ends the call when the caller's signal aborts, and tries no other node", async () => {
    const control = new ControlClient([hung.endpoint, up.endpoint], TOKEN);
    const upBefore = up.hits();
    const stop = new AbortController();
    const hungBefore = hung.hits();
    const call = control.send({ method: 'GET', path: '/v1/who', timeoutMs: 60_000, signal: stop.signal });
    const typed = control.request(WHO, { signal: stop.signal });
    // Abort once both requests reached the hung node.
    await waitUntil(() => hung.hits() === hungBefore + 2, {
      timeoutMs: 5000,
      intervalMs: 10,
      what: 'both calls at the hung node',
    });
    stop.abort(new Error('the caller gave up'));
    await expect(call).rejects.toThrow('the caller gave up');
    await expect(typed).rejects.toThrow('the caller gave up');
    expect(up.hits()).toBe(upBefore);
  });
});

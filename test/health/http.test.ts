import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HealthService, httpCheckpoint, InvalidCheckpointError } from '../../src/health/index.js';
import { startHttp, within } from './support.js';

describe('the http checkpoint against a real HTTP server', () => {
  let service: Awaited<ReturnType<typeof startHttp>>;
  const silent: ServerResponse[] = [];

  beforeAll(async () => {
    service = await startHttp((req, res) => {
      if (req.url === '/health') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"status":"UP","db":"ok"}');
      } else if (req.url === '/broken') {
        res.writeHead(500);
        res.end('oops');
      } else if (req.url === '/moved') {
        res.writeHead(302, { location: '/health' });
        res.end();
      } else if (req.url === '/silent') {
        silent.push(res); // accepts and never answers
      } else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  afterAll(async () => {
    for (const res of silent) res.destroy();
    await service?.stop();
  });

  async function probe(options: Omit<Parameters<typeof httpCheckpoint>[0], 'name' | 'component'>) {
    const health = new HealthService({ serviceId: 'us-east', timeoutMs: 500 });
    health.add(httpCheckpoint({ name: 'orders', component: 'app', ...options }));
    const report = await within(5000, health.check(), 'the health report');
    return { report, entry: report.checks['app:responseTime']?.[0] };
  }

  it('passes when the service answers the expected status', async () => {
    const { report, entry } = await probe({ url: `${service.url}/health` });
    expect(report.status).toBe('pass');
    expect(entry).toMatchObject({
      componentId: 'orders',
      componentType: 'system',
      status: 'pass',
      observedUnit: 'ms',
    });
  });

  it('checks the body against bodyMatch', async () => {
    expect(
      (await probe({ url: `${service.url}/health`, bodyMatch: '"status":\\s*"UP"' })).entry?.status,
    ).toBe('pass');
    const { report, entry } = await probe({ url: `${service.url}/health`, bodyMatch: '"DOWN"' });
    expect(report.status).toBe('fail');
    expect(entry).toMatchObject({ status: 'fail', output: 'the body does not match bodyMatch' });
  });

  it('fails on another status, and does not follow redirects', async () => {
    expect((await probe({ url: `${service.url}/broken` })).entry).toMatchObject({
      status: 'fail',
      output: 'answered 500, expected 200',
    });
    expect((await probe({ url: `${service.url}/moved` })).entry?.output).toBe('answered 302, expected 200');
    expect((await probe({ url: `${service.url}/broken`, expectedStatus: 500 })).entry?.status).toBe('pass');
  });

  it('fails within its timeout when the service accepts but never answers', async () => {
    const { entry } = await probe({ url: `${service.url}/silent`, timeoutMs: 200 });
    expect(entry).toMatchObject({ status: 'fail', output: 'timed out after 200 ms (requesting)' });
  });

  it('fails when the service is stopped', async () => {
    const other = await startHttp((_req, res) => res.end('ok'));
    const url = `${other.url}/`;
    expect((await probe({ url })).entry?.status).toBe('pass');
    await other.stop();
    const { report, entry } = await probe({ url });
    expect(report.status).toBe('fail');
    expect(entry).toMatchObject({ status: 'fail', output: 'request failed: ECONNREFUSED' });
    expect(entry?.output).not.toContain('127.0.0.1');
  });

  it('refuses bad options, naming each field', () => {
    try {
      httpCheckpoint({
        name: 'orders',
        component: 'app',
        url: 'http://user:secret@example.test/',
        bodyMatch: '(',
        expectedStatus: 99,
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidCheckpointError);
      const e = error as InvalidCheckpointError;
      expect(e.code).toBe('IOTDR_HEALTH_INVALID_CHECKPOINT');
      expect(e.issues.map((i) => i.path).sort()).toEqual(['bodyMatch', 'expectedStatus', 'url']);
      expect(e.message).not.toContain('secret');
    }
  });
});

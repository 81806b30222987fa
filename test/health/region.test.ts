import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  brokerCheckpoint,
  HealthService,
  httpCheckpoint,
  registryCheckpoint,
} from '../../src/health/index.js';
import { get, openRegistry, startApi, startHttp, within } from './support.js';
import { makePki, startTlsBroker, type TestPki } from './tls-broker.js';

/**
 * Issue 4's "done when": /health over the region API fails the broker checkpoint when the broker
 * is stopped and a configured app checkpoint when that service is down, within its budget.
 */
describe('/health of a region whose broker and application service go down', () => {
  let pki: TestPki;
  let registry: Awaited<ReturnType<typeof openRegistry>>;

  beforeAll(async () => {
    pki = await makePki();
    registry = await openRegistry();
  });
  afterAll(async () => {
    await registry?.close();
    await pki?.cleanup();
  });

  it('passes, then fails broker:roundTrip and app:responseTime with 503 once they are stopped', async () => {
    const broker = await startTlsBroker(pki);
    const orders = await startHttp((_req, res) => res.end('{"status":"UP"}'));
    const api = await startApi(registry.service, (metrics) =>
      new HealthService({ serviceId: 'us-east', version: '0.1.0', metrics })
        .add(brokerCheckpoint(() => broker.identity()))
        .add(registryCheckpoint(registry.service))
        .add(
          httpCheckpoint({ name: 'orders', component: 'app', url: `${orders.url}/health`, bodyMatch: 'UP' }),
        ),
    );
    try {
      const up = await get(`${api.url}/health`);
      expect(up.status).toBe(200);
      expect(up.body.status).toBe('pass');

      await broker.close();
      await orders.stop();
      // The budget is 1,250 ms; the bound below only keeps a broken build from waiting forever.
      expect(api.health.budgetMs).toBe(1250);
      const down = await within(api.health.budgetMs + 5000, get(`${api.url}/health`), 'the /health answer');
      expect(down.status).toBe(503);
      expect(down.body.status).toBe('fail');
      expect(down.body.checks['broker:roundTrip'][0]).toMatchObject({ status: 'fail', critical: true });
      expect(down.body.checks['app:responseTime'][0]).toMatchObject({
        componentId: 'orders',
        status: 'fail',
        output: 'request failed: ECONNREFUSED',
      });
      expect(down.body.checks['registry:writeRead'][0].status).toBe('pass');
      expect(down.body.output).toMatch(/broker: .*; orders: request failed: ECONNREFUSED/);
      const one = await get(`${api.url}/health/broker`);
      expect(one.status).toBe(503);
      expect(Object.keys(one.body.checks)).toEqual(['broker:roundTrip']);
      // No secret leaves: neither the health key nor the certificate.
      const text = JSON.stringify(down.body);
      expect(text).not.toContain('PRIVATE KEY');
      expect(text).not.toContain('CERTIFICATE');
    } finally {
      await api.close();
      await orders.stop();
      await broker.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HealthService, REGISTRY_PROBE_KEY, registryCheckpoint } from '../../src/health/index.js';
import { openRegistry, within } from './support.js';

describe('the registry checkpoint on a real SQLite store', () => {
  let registry: Awaited<ReturnType<typeof openRegistry>>;

  beforeAll(async () => {
    registry = await openRegistry();
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('writes a fresh nonce to local state and reads it back, never into the change log', async () => {
    const health = new HealthService({ serviceId: 'us-east' });
    health.add(registryCheckpoint(registry.service));
    const seq = await registry.store.lastSeq();
    const first = await health.check();
    expect(first.status).toBe('pass');
    expect(first.checks['registry:writeRead']?.[0]).toMatchObject({
      componentType: 'datastore',
      status: 'pass',
      observedUnit: 'ms',
    });
    const a = await registry.store.getLocal(REGISTRY_PROBE_KEY);
    await health.check();
    const b = await registry.store.getLocal(REGISTRY_PROBE_KEY);
    expect(typeof a?.nonce).toBe('string');
    expect(b?.nonce).not.toBe(a?.nonce);
    expect(await registry.store.lastSeq()).toBe(seq);
  });

  it('fails when the store cannot write', async () => {
    const other = await openRegistry();
    const health = new HealthService({ serviceId: 'us-east' });
    health.add(registryCheckpoint(other.service));
    expect((await health.check()).status).toBe('pass');
    await other.store.close();
    const report = await within(5000, health.check(), 'the health report');
    expect(report.status).toBe('fail');
    expect(report.checks['registry:writeRead']?.[0]?.status).toBe('fail');
    expect(report.checks['registry:writeRead']?.[0]?.output).toBeTruthy();
    await other.close();
  });
});

/**
 * A token device (the broker's token listener: username = thing name, password = device token)
 * connects under the DR name, publishes through the queue and follows a failover like an mTLS one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../harness/cluster.js';
import { type DrSite, nextEvent, startDrSite } from './support.js';

describe('device SDK with a device token', () => {
  let site: DrSite;

  beforeAll(async () => {
    site = await startDrSite(['127.0.0.59', '127.0.0.60'], { tokenAuth: true });
  });
  afterAll(async () => {
    await site?.close();
  });

  it('connects with its token, delivers in both regions and moves on the notice', async () => {
    const device = await site.device('token-1');
    const issued = await site.east.call('POST', '/v1/things/token-1/token', {
      policyNames: ['token-1-policy'],
    });
    expect(issued.status).toBe(201);
    const token = issued.body.token as string;
    // The token replicates like every registry entity.
    await eventually(
      async () => (await site.west.call('GET', '/v1/things/token-1/token')).status === 200,
      'token in us-west',
    );

    const tokenClient = site.client(device, {
      port: site.tokenPort,
      auth: { type: 'token', token, caPem: site.caPem },
    });
    const connected = nextEvent(tokenClient, 'connected');
    tokenClient.start();
    expect(await connected).toMatchObject({ region: 'us-east', port: site.tokenPort });
    const first = await tokenClient.publish('devices/token-1/telemetry', { n: 1 });

    const moved = nextEvent(tokenClient, 'moved');
    await site.switchTo('us-west');
    expect(await moved).toMatchObject({ from: 'us-east', to: 'us-west', trigger: 'notice' });
    const second = await tokenClient.publish('devices/token-1/telemetry', { n: 2 });
    await eventually(async () => tokenClient.queueDepth === 0, 'both acknowledged');
    expect((await site.busIds(site.east)).has(first.messageId)).toBe(true);
    expect((await site.busIds(site.west)).has(second.messageId)).toBe(true);

    // A wrong token is refused (CONNACK 4) and retried, never given up on.
    const wrong = site.client(device, {
      port: site.tokenPort,
      auth: { type: 'token', token: 'iotdrdev_wrong', caPem: site.caPem },
    });
    const retried = nextEvent(wrong, 'retry', (e) => e.attempt >= 2);
    wrong.start();
    expect((await retried).error).toMatch(/Bad username or password|not authorized/i);
    expect(wrong.connection).toBeUndefined();
  });
});

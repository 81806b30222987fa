import { expect, it } from 'vitest';
import { type ClusterRegion, type Engine, startCluster } from '../harness/cluster.js';
import { converged, inParallel, onEachEngine, regionOf } from './support.js';

const devicePolicy = {
  Version: '2012-10-17',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a policy variable, written ${…} as in AWS IoT
  Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:ClientId}' }],
};

async function ok(region: ClusterRegion, method: string, path: string, body?: unknown): Promise<any> {
  const res = await region.call(method, path, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** How far device i's life goes: 0 everything attached, 1 detached from its thing, 2 certificate deleted. */
const ending = (i: number) => i % 3;

/**
 * Per device, in us-east: create a certificate, a thing, attach them, create a policy, attach it
 * to the certificate, then (for some) detach the certificate from the thing and (for others)
 * delete the certificate with force. Small batches in the link, so a device's steps straddle them;
 * half the devices while us-west tails live, half while it is down. us-west must end with the
 * same attachments present and absent.
 */
async function orderSensitive(engine: Engine): Promise<void> {
  const c = await startCluster(['us-east', 'us-west'], engine, { replication: { batchSize: 7 } });
  try {
    const east = regionOf(c, 'us-east');
    const west = regionOf(c, 'us-west');
    const devices = Array.from({ length: 24 }, (_, i) => i);
    const certOf = new Map<number, string>();
    const lifeOf = async (i: number) => {
      const made = await ok(east, 'POST', '/v1/certificates', {});
      const id = made.certificate.certificateId as string;
      certOf.set(i, id);
      await ok(east, 'PUT', `/v1/things/dev-${i}`, { attributes: { n: `${i}` } });
      await ok(east, 'PUT', `/v1/things/dev-${i}/certificates/${id}`);
      await ok(east, 'PUT', `/v1/policies/pol-${i}`, { policyDocument: devicePolicy });
      await ok(east, 'PUT', `/v1/certificates/${id}/policies/pol-${i}`);
      if (ending(i) >= 1) await ok(east, 'DELETE', `/v1/things/dev-${i}/certificates/${id}`);
      if (ending(i) === 2) await ok(east, 'DELETE', `/v1/certificates/${id}?force=true`);
    };
    // Half while us-west tails them live, half while it is down (then read back in one burst).
    await inParallel(devices.slice(0, 12), 6, lifeOf);
    await west.stop();
    await inParallel(devices.slice(12), 6, lifeOf);
    await west.start();
    await converged([east, west]);

    // What a user sees through the API of each region, device by device.
    const view = async (r: ClusterRegion, i: number) => {
      const id = certOf.get(i);
      const [thingCerts, cert, certPolicies, certThings] = await Promise.all([
        r.call('GET', `/v1/things/dev-${i}/certificates`),
        r.call('GET', `/v1/certificates/${id}`),
        r.call('GET', `/v1/certificates/${id}/policies`),
        r.call('GET', `/v1/certificates/${id}/things`),
      ]);
      return {
        thingCerts: thingCerts.body.items,
        cert: cert.status,
        certPolicies: certPolicies.status === 200 ? certPolicies.body.items : certPolicies.status,
        certThings: certThings.status === 200 ? certThings.body.items : certThings.status,
      };
    };
    for (const i of devices) {
      const [inEast, inWest] = await Promise.all([view(east, i), view(west, i)]);
      expect(inWest, `dev-${i}`).toEqual(inEast);
      const id = certOf.get(i);
      const expected =
        ending(i) === 0
          ? { thingCerts: [id], cert: 200, certPolicies: [`pol-${i}`], certThings: [`dev-${i}`] }
          : ending(i) === 1
            ? { thingCerts: [], cert: 200, certPolicies: [`pol-${i}`], certThings: [] }
            : { thingCerts: [], cert: 404, certPolicies: 404, certThings: 404 };
      expect(inWest, `dev-${i}`).toEqual(expected);
    }
  } finally {
    await c.close();
  }
}

onEachEngine('an order-sensitive sequence of changes', (engine) => {
  it('create, attach, detach and force-delete replicate to the same attachments', async () => {
    await orderSensitive(engine());
  }, 60_000);
});

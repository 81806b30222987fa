// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
/**
 * Fills us-east's SQLite store in this process, through the registry service, before us-east runs
 * as a process: much faster than HTTP, and the changes are the ones the service writes for the
 * same calls (ids, versions, HLCs, origin us-east). The store is opened with synchronous=normal
 * for the load only (a crash of the loader would just fail the run); the region opens it with its
 * configured synchronous=full.
 */
import { systemClock, uuidv7 } from '../../src/common/index.js';
import { HybridClock, KIND, RegistryService, SqliteStore } from '../../src/registry/index.js';
import { check, drive } from '../registry/common.js';
import { checkDeviceCertificate, type DeviceCertificate, DeviceCertificateFactory } from './certs.js';
import { EAST } from './regions.js';

const CONCURRENCY = 128;
/** Certificates written per transaction. */
const CERTIFICATE_CHUNK = 1000;
/** Certificates registered through `registerCertificate` (the full path, with parsing). */
const REGISTERED_THROUGH_API_PATH = 50;
/** Generated certificates checked against the registry's parser and OpenSSL. */
const CERTIFICATE_SAMPLE = 100;
export const DEVICE_POLICY = 'bench-device';
/** Longest a load may take; only bounds the loops. */
const LOAD_LIMIT_MS = 10 * 60_000;
const CERTIFICATE_FIELDS = [
  'certificateId',
  'certificatePem',
  'status',
  'caCertificateId',
  'subject',
  'issuer',
  'serialNumber',
  'notBefore',
  'notAfter',
] as const;

export const thingName = (prefix: string, i: number) => `${prefix}-${String(i).padStart(6, '0')}`;

/** A thing as a fleet registers it: a name and a few attributes, no type. */
export function thingBody(i: number) {
  return {
    attributes: {
      site: `site-${i % 97}`,
      model: 'x2',
      serial: `SN${i.toString().padStart(9, '0')}`,
      firmware: '1.4.2',
    },
  };
}

async function withService<T>(path: string, fn: (service: RegistryService) => Promise<T>): Promise<T> {
  const store = new SqliteStore({ path, synchronous: 'normal' });
  await store.init();
  try {
    check((await store.count(KIND.thing)) === 0, `${path} already holds things`);
    const service = new RegistryService({ store, region: EAST });
    await service.init();
    return await fn(service);
  } finally {
    await store.close();
  }
}

/** `n` new things (`prefix-000000`…), each one putThing: `n` changes. */
export async function loadThings(path: string, prefix: string, n: number): Promise<void> {
  await withService(path, async (service) => {
    await drive(CONCURRENCY, LOAD_LIMIT_MS, n, async (i) => {
      const r = await service.putThing(thingName(prefix, i), thingBody(i));
      if (!r.created) throw new Error(`putThing ${thingName(prefix, i)} did not create it`);
    });
    const things = await service.store.count(KIND.thing);
    check(things === n, `loaded ${things} things, meant ${n}`);
  });
}

export interface DeviceLoad {
  /** Entities written (each with its change record). */
  entities: number;
  seconds: { certificates: number; registry: number };
}

/**
 * `n` devices as a fleet provisions them: a thing, its certificate, the certificate attached to
 * the thing and the device policy attached to the certificate, plus the one policy.
 *
 * The certificates are made by DeviceCertificateFactory. In certificate id order, the first 50
 * are registered through `RegistryService.registerCertificate`, which parses each one (about
 * 1.7 ms: 170 s for 100,000); the rest are written through a service transaction as the same
 * certificate document (the fields `parseCertificatePem` gives, status ACTIVE, no CA), each with
 * its change record, 1,000 per transaction. The stored documents of both paths are compared.
 * Things and both attachments go through `putThing`, `attachCertificate` and `attachPolicy`,
 * 128 calls in flight.
 */
export async function loadDevices(path: string, prefix: string, n: number): Promise<DeviceLoad> {
  return withService(path, async (service) => {
    const started = process.hrtime.bigint();
    const factory = new DeviceCertificateFactory();
    const certificates: DeviceCertificate[] = [];
    for (let i = 0; i < n; i++) certificates.push(factory.make(i, thingName(prefix, i)));
    for (let s = 0; s < CERTIFICATE_SAMPLE; s++) {
      const cert = certificates[Math.floor((s * n) / CERTIFICATE_SAMPLE)];
      if (cert) checkDeviceCertificate(cert);
    }
    const generated = process.hrtime.bigint();

    const byId = [...certificates].sort((a, b) => (a.certificateId < b.certificateId ? -1 : 1));
    const viaApi = Math.min(REGISTERED_THROUGH_API_PATH, n);
    for (const cert of byId.slice(0, viaApi)) {
      const r = await service.registerCertificate({ certificatePem: cert.certificatePem });
      check(r.created, `registerCertificate ${cert.certificateId} did not create it`);
    }
    // The same clock discipline as the service: the region restores past it when it starts.
    const hlc = new HybridClock(systemClock);
    hlc.restore((await service.store.maxHlc()) ?? { wall: 0, counter: 0 });
    for (let from = viaApi; from < n; from += CERTIFICATE_CHUNK) {
      const chunk = byId.slice(from, Math.min(n, from + CERTIFICATE_CHUNK));
      await service.transaction(async (tx) => {
        for (const cert of chunk) {
          const now = systemClock.now();
          const iso = new Date(now).toISOString();
          const stamp = hlc.now();
          await tx.apply({
            changeId: uuidv7(stamp.wall),
            kind: KIND.certificate,
            key: cert.certificateId,
            op: 'upsert',
            ref: null,
            doc: { ...cert, status: 'ACTIVE', caCertificateId: null, createdAt: iso, updatedAt: iso },
            version: 1,
            hlc: stamp,
            origin: EAST,
            at: now,
          });
        }
      });
    }
    // Both paths stored the same document, timestamps aside.
    for (const i of [0, viaApi - 1, viaApi, n - 1]) {
      const cert = byId[i];
      if (!cert) continue;
      const stored = (await service.getCertificate(cert.certificateId)) as unknown as Record<string, unknown>;
      const expected: Record<string, unknown> = { ...cert, status: 'ACTIVE', caCertificateId: null };
      for (const field of CERTIFICATE_FIELDS) {
        check(
          stored[field] === expected[field],
          `certificate ${i}: ${field} stored as ${JSON.stringify(stored[field])}, expected ${JSON.stringify(expected[field])}`,
        );
      }
    }

    const policy = await service.putPolicy(DEVICE_POLICY, {
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish', 'iot:Receive'],
            Resource: ['arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*'],
          },
        ],
      },
    });
    check(policy.created, 'the device policy was not created');

    // Each kind in key order: the entities table is keyed (kind, key), and inserts in key order
    // append to its B-tree instead of splitting pages all over it (3.5 times faster on SQLite).
    const step = async (what: string, fn: (i: number) => Promise<{ created: boolean }>) => {
      await drive(CONCURRENCY, LOAD_LIMIT_MS, n, async (i) => {
        if (!(await fn(i)).created) throw new Error(`${what} ${i} was not created`);
      });
    };
    await step('thing', (i) => service.putThing(thingName(prefix, i), thingBody(i)));
    await step('certificate attachment', (i) =>
      service.attachCertificate(thingName(prefix, i), certificates[i]?.certificateId ?? ''),
    );
    await step('policy attachment', (i) => service.attachPolicy(byId[i]?.certificateId ?? '', DEVICE_POLICY));
    const done = process.hrtime.bigint();
    for (const kind of [KIND.thing, KIND.certificate, KIND.thingPrincipal, KIND.policyPrincipal]) {
      const count = await service.store.count(kind);
      check(count === n, `loaded ${count} ${kind} entities, meant ${n}`);
    }
    return {
      entities: 4 * n + 1,
      seconds: {
        certificates: Number(generated - started) / 1e9,
        registry: Number(done - generated) / 1e9,
      },
    };
  });
}

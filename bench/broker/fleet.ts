// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
/**
 * The bench's devices, written into a region's registry before the region starts: each a thing
 * with a certificate issued by the embedded CA (its own key pair), the policy `bench-device` (or
 * the one given) attached to the certificate, and a device token listing the same policy. Both
 * brokers get the same credentials: mosquitto trusts the same CA and gets the tokens as passwords.
 */
import { webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { loadOrCreateCa, x509 } from '../../src/pki/index.js';
import { type PolicyDocument, RegistryService, SqliteStore } from '../../src/registry/index.js';

export const BENCH_POLICY = 'bench-device';
/** Publishers publish on `bench/<thing>/m`; subscribers subscribe to this filter. */
export const SUBSCRIBE_FILTER = 'bench/+/m';

export function publishTopic(thingName: string): string {
  return `bench/${thingName}/m`;
}

const THING = '${iot:Connection.Thing.ThingName}';

/**
 * Connect with the thing name as client id, publish only under `bench/<thing>/m`, subscribe to
 * and receive all of `bench/`. mosquitto's ACL says the same (its client ids are not checked).
 */
export function benchPolicy(): PolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['iot:Connect'], Resource: [`client/${THING}`] },
      { Effect: 'Allow', Action: ['iot:Publish'], Resource: [`topic/bench/${THING}/m`] },
      { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: ['topicfilter/bench/*'] },
      { Effect: 'Allow', Action: ['iot:Receive'], Resource: ['topic/bench/*'] },
    ],
  };
}

export const HOLDER_POLICY = 'bench-holder';

/**
 * The idle sessions that hold subscriptions while QoS1 is measured: connect as its thing, subscribe
 * to any filter and receive any topic (a backend's rights). They subscribe under `bench/held/`,
 * which mosquitto's ACL (`pattern read bench/#`) allows as well.
 */
export function holderPolicy(): PolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['iot:Connect'], Resource: [`client/${THING}`] },
      { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: ['topicfilter/*'] },
      { Effect: 'Allow', Action: ['iot:Receive'], Resource: ['topic/*'] },
    ],
  };
}

export interface BenchDevice {
  thingName: string;
  certPem: string;
  keyPem: string;
  /** Its device token: the password on the token listener (username = thing name). */
  token: string;
}

export interface Fleet {
  caPem: string;
  devices: BenchDevice[];
  /** Server certificate for mosquitto, from the same CA. */
  server: { certPem: string; keyPem: string };
}

const PARALLEL = 8;

/**
 * A device key pair and a CSR with `CN=<thing name>`, as a device would make them: the CA copies
 * the subject, so mosquitto's `use_identity_as_username` sees the thing name.
 */
async function deviceCsr(thingName: string): Promise<{ csr: string; keyPem: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${thingName}`,
    keys,
    signingAlgorithm: algorithm,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { csr: request.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/**
 * Provisions `count` devices `<prefix>-<i>` into the SQLite store at `dbPath`, with the CA of
 * `<stateDir>/pki` (made when absent, where the region will find it). The store is closed again.
 */
export async function provisionFleet(options: {
  stateDir: string;
  dbPath: string;
  region: string;
  zone: string;
  prefix: string;
  count: number;
  /** The policy every device gets, on its certificate and its token. Default `bench-device` (benchPolicy()). */
  policy?: { name: string; document: PolicyDocument };
}): Promise<Fleet> {
  const policy = options.policy ?? { name: BENCH_POLICY, document: benchPolicy() };
  const ca = await loadOrCreateCa(join(options.stateDir, 'pki'));
  const store = new SqliteStore({ path: options.dbPath });
  await store.init();
  try {
    const service = new RegistryService({ store, region: options.region, ca });
    await service.init();
    await service.putPolicy(policy.name, {
      policyDocument: policy.document as unknown as Record<string, unknown>,
    });
    const devices: BenchDevice[] = new Array(options.count);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < options.count; i = next++) {
        const thingName = `${options.prefix}-${i}`;
        await service.putThing(thingName, { attributes: {} });
        const { csr, keyPem } = await deviceCsr(thingName);
        const created = await service.createCertificate({ csr });
        const certificateId = created.certificate.certificateId;
        await service.attachCertificate(thingName, certificateId);
        await service.attachPolicy(certificateId, policy.name);
        const { token } = await service.createDeviceToken(thingName, [policy.name]);
        devices[i] = { thingName, certPem: created.certificate.certificatePem, keyPem, token };
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const server = await ca.issueServerCertificate({
      commonName: `mqtt.${options.zone}`,
      dnsNames: [`mqtt.${options.zone}`],
      ipAddresses: ['127.0.0.1'],
    });
    return {
      caPem: ca.certificatePem,
      devices,
      server: { certPem: server.certificatePem, keyPem: server.privateKeyPem },
    };
  } finally {
    await store.close();
  }
}

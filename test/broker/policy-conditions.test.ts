// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
/**
 * Policies with Conditions decided on what the connection itself tells: the client certificate's
 * subject (https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html), the
 * source address and server name (basic-policy-variables.html) and the CONNECT's options
 * (connect-policy.html, "MQTT persistent sessions policy examples"), over real mutual TLS.
 */
import { webcrypto } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateFields } from '../../src/broker/connection-facts.js';
import { x509 } from '../../src/pki/index.js';
import {
  type ConnectOptions,
  connect,
  endAll,
  refusal,
  selfSignedDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
  ZONE,
} from './support.js';

const ARN = 'arn:aws:iot:us-east-1:123456789012';

/** Connect as the certificate's common name; publish and subscribe below cn/<common name>/, from loopback only. */
const POLICY = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Action: 'iot:Connect',
      Resource: `${ARN}:client/\${iot:Certificate.Subject.CommonName}`,
      Condition: {
        StringLike: { 'iot:Certificate.Subject.CommonName': 'alpha-*' },
        StringEquals: { 'iot:DomainName': `mqtt.${ZONE}` },
      },
    },
    {
      Effect: 'Allow',
      Action: ['iot:Publish', 'iot:Receive'],
      Resource: `${ARN}:topic/cn/\${iot:Certificate.Subject.CommonName}/*`,
      Condition: { IpAddress: { 'aws:SourceIp': '127.0.0.0/8' } },
    },
    {
      Effect: 'Allow',
      Action: 'iot:Subscribe',
      Resource: `${ARN}:topicfilter/cn/\${iot:Certificate.Subject.CommonName}/*`,
      Condition: { NotIpAddress: { 'aws:SourceIp': '127.0.0.0/8' } },
    },
    {
      Effect: 'Deny',
      Action: 'iot:Connect',
      Resource: '*',
      Condition: { 'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': 'PersistentConnect' } },
    },
  ],
};

describe('broker: policy Conditions on the connection', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  const clients: MqttClient[] = [];
  const creds: Record<string, { certPem: string; keyPem: string }> = {};

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry);
    await registry.service.putPolicy('by-subject', { policyDocument: POLICY });
    for (const name of ['alpha-1', 'beta-1']) {
      creds[name] = await selfSignedDevice(name);
      const registered = await registry.service.registerCertificate({ certificatePem: creds[name].certPem });
      await registry.service.attachPolicy(registered.item.certificateId, 'by-subject');
    }
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  function open(name: string, extra: Partial<ConnectOptions> = {}): Promise<MqttClient> {
    const { certPem, keyPem } = creds[name] as { certPem: string; keyPem: string };
    return connect({
      port: broker.port,
      ca: registry.ca.certificatePem,
      cert: certPem,
      key: keyPem,
      clientId: name,
      ...extra,
    });
  }

  it('lets a certificate whose common name the Condition allows connect, as that name', async () => {
    const client = await open('alpha-1');
    clients.push(client);
    expect(client.connected).toBe(true);
  });

  it('refuses the same policy to a certificate with another common name', async () => {
    expect(await refusal(open('beta-1'))).toBe(5);
    expect(broker.logs.refusals('connect_denied').some((l) => l.clientId === 'beta-1')).toBe(true);
  });

  it('refuses a client id other than the common name the resource substitutes', async () => {
    expect(await refusal(open('alpha-1', { clientId: 'alpha-2' }))).toBe(5);
  });

  it('decides publish and subscribe on aws:SourceIp (clients here connect from 127.0.0.1)', async () => {
    const client = await open('alpha-1', { clientId: 'alpha-1' });
    clients.push(client);
    await client.publishAsync('cn/alpha-1/telemetry', 'x', { qos: 1 });
    expect(client.connected).toBe(true);
    expect(await subscribe(client, 'cn/alpha-1/commands')).toEqual([128]);
  });

  it('refuses a client that asks for another server name (iot:DomainName)', async () => {
    expect(await refusal(open('alpha-1', { servername: 'localhost', rejectUnauthorized: false }))).toBe(5);
  });

  it('refuses a persistent session (iot:ConnectAttributes)', async () => {
    expect(await refusal(open('alpha-1', { clientId: 'alpha-1', clean: false }))).toBe(5);
    const denied = broker.logs.refusals('connect_denied').filter((l) => l.clientId === 'alpha-1');
    expect(denied.at(-1)?.detail).toBe('iot:Connect denied by policy by-subject statement 3');
  });
});

describe('certificateFields', () => {
  // The example certificate of https://docs.aws.amazon.com/iot/latest/developerguide/use-policy-variables.html
  // and the values that page says its policy variables take.
  it('reads the certificate as AWS IoT populates its policy variables', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const subject = [
      'C=US',
      'O=IoT Devices',
      'OU=LightBulb',
      'ST=NY',
      'CN=LightBulb Device Cert',
      '2.5.4.42=Bulb',
      '2.5.4.43=ZZ',
      '2.5.4.46=Bulb001',
      '2.5.4.4=Multi Color',
      '2.5.4.12=RGB',
      '2.5.4.65=RGB Device',
      '2.5.4.44=4',
      '2.5.4.5=123',
    ].join(', ');
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '00921285cbb7a5e086',
      name: subject,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      notBefore: new Date('2024-03-26T03:25:40Z'),
      notAfter: new Date('2025-04-28T03:25:40Z'),
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: 'example.com' },
          { type: 'ip', value: '1.2.3.4' },
          { type: 'url', value: 'ResourceIdentifier001' },
          { type: 'email', value: 'device1@example.com' },
          { type: 'dn', value: 'C=US, O=IoT, OU=SmartHome, CN=LightBulbCert' },
        ]),
        new x509.IssuerAlternativeNameExtension([
          { type: 'dns', value: 'issuer.com' },
          { type: 'ip', value: '5.6.7.8' },
        ]),
      ],
    });
    const fields = certificateFields(new Uint8Array(cert.rawData));
    expect(fields).toMatchObject({
      'Subject.Country': ['US'],
      'Subject.Organization': ['IoT Devices'],
      'Subject.OrganizationalUnit': ['LightBulb'],
      'Subject.State': ['NY'],
      'Subject.CommonName': ['LightBulb Device Cert'],
      'Subject.GivenName': ['Bulb'],
      'Subject.Initials': ['ZZ'],
      'Subject.DistinguishedNameQualifier': ['Bulb001'],
      'Subject.Surname': ['Multi Color'],
      'Subject.Title': ['RGB'],
      'Subject.Pseudonym': ['RGB Device'],
      'Subject.GenerationQualifier': ['4'],
      'Subject.SerialNumber': ['123'],
      'Issuer.CommonName': ['LightBulb Device Cert'],
      'Subject.AlternativeName.DNSName': ['example.com'],
      'Subject.AlternativeName.IPAddress': ['1.2.3.4'],
      'Subject.AlternativeName.UniformResourceIdentifier': ['ResourceIdentifier001'],
      'Subject.AlternativeName.RFC822Name': ['device1@example.com'],
      'Subject.AlternativeName.DirectoryName': ['cn=LightBulbCert,ou=SmartHome,o=IoT,c=US'],
      'Issuer.AlternativeName.DNSName': ['issuer.com'],
      'Issuer.AlternativeName.IPAddress': ['5.6.7.8'],
      SerialNumber: ['10525622389124227206'],
    });
  });

  it('keeps the first five values of an attribute', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: ['a', 'b', 'c', 'd', 'e', 'f'].map((ou) => `OU=${ou}`).join(', '),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    expect(certificateFields(new Uint8Array(cert.rawData))['Subject.OrganizationalUnit']).toEqual([
      'a',
      'b',
      'c',
      'd',
      'e',
    ]);
  });
});

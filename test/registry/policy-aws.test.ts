// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
/**
 * Conformance with AWS IoT Core's developer guide: each policy below is copied from the page its
 * comment cites (https://docs.aws.amazon.com/iot/latest/developerguide/PAGE), and the cases check
 * what the page says the policy allows and denies.
 */
import { describe, expect, it } from 'vitest';
import {
  compilePolicies,
  evaluate,
  type IotAction,
  type PolicyContext,
  parsePolicyDocument,
} from '../../src/registry/policy/index.js';

type Outcome = 'allow' | 'deny' | 'implicit';
type Case = [string, PolicyContext, IotAction, string, Outcome];

function outcome(document: unknown, context: PolicyContext, action: IotAction, resource: string): Outcome {
  const set = compilePolicies([{ name: 'aws', version: '1', document: parsePolicyDocument(document) }]);
  const decision = evaluate(set, context, action, resource);
  return decision.effect === 'allow' ? 'allow' : decision.reason === 'explicit' ? 'deny' : 'implicit';
}

function conforms(document: unknown, cases: Case[]): void {
  it.each(cases)('%s', (_name, context, action, resource, expected) => {
    expect(outcome(document, context, action, resource)).toBe(expected);
  });
}

/** A device whose certificate is attached to thing `t1` and that connects as `t1`. */
const attached: PolicyContext = { clientId: 't1', thingName: 't1' };
/** A certificate attached to no thing. */
const unattached: PolicyContext = { clientId: 't1' };

describe('connect-policy.html', () => {
  describe('deny client1 and client2; allow a registered thing attached to the principal (the recommended Connect policy)', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Deny',
            Action: ['iot:Connect'],
            Resource: [
              'arn:aws:iot:us-east-1:123456789012:client/client1',
              'arn:aws:iot:us-east-1:123456789012:client/client2',
            ],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
            Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
          },
        ],
      },
      [
        ['the attached thing, as its name', attached, 'iot:Connect', 'client/t1', 'allow'],
        ['the attached thing, as another client id', attached, 'iot:Connect', 'client/t2', 'implicit'],
        [
          'client1 is denied',
          { clientId: 'client1', thingName: 'client1' },
          'iot:Connect',
          'client/client1',
          'deny',
        ],
        ['a certificate attached to no thing', unattached, 'iot:Connect', 'client/t1', 'implicit'],
      ],
    );
  });

  describe('an unregistered device connects as client1', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/client1'],
          },
        ],
      },
      [
        ['client1', { clientId: 'client1' }, 'iot:Connect', 'client/client1', 'allow'],
        ['client2', { clientId: 'client2' }, 'iot:Connect', 'client/client2', 'implicit'],
      ],
    );
  });

  const clean: PolicyContext = { clientId: 'c', connectAttributes: [] };
  const persistent: PolicyContext = { clientId: 'c', connectAttributes: ['PersistentConnect'] };
  const will: PolicyContext = {
    clientId: 'c',
    connectAttributes: ['LastWill'],
    lastWillTopic: 'arn:aws:iot:::topic/my/lastwill/topicName',
  };
  const both: PolicyContext = { ...will, connectAttributes: ['PersistentConnect', 'LastWill'] };

  describe('MQTT persistent sessions: allows connect with the PersistentConnect feature', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: '*',
            Condition: { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } },
          },
        ],
      },
      [
        ['a persistent session', persistent, 'iot:Connect', 'client/c', 'allow'],
        ['a clean session', clean, 'iot:Connect', 'client/c', 'allow'],
        ['a persistent session with a will', both, 'iot:Connect', 'client/c', 'implicit'],
      ],
    );
  });

  describe('MQTT persistent sessions: disallows PersistentConnect, other features are allowed (StringEquals form)', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: ['iot:Connect'], Resource: '*' },
          {
            Effect: 'Deny',
            Action: ['iot:Connect'],
            Resource: '*',
            Condition: { 'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } },
          },
        ],
      },
      [
        ['a persistent session', persistent, 'iot:Connect', 'client/c', 'deny'],
        ['a clean session with a will', will, 'iot:Connect', 'client/c', 'allow'],
      ],
    );
  });

  describe('MQTT persistent sessions: only allows connect using default features', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: '*',
            Condition: { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': [] } },
          },
        ],
      },
      [
        ['a clean session without a will', clean, 'iot:Connect', 'client/c', 'allow'],
        ['a will', will, 'iot:Connect', 'client/c', 'implicit'],
      ],
    );
  });

  describe('MQTT persistent sessions: allows connect only by clients that have a LastWill with topic my/lastwill/topicName', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: '*',
            Condition: {
              ArnEquals: { 'iot:LastWillTopic': 'arn:aws:iot:region:account-id:topic/my/lastwill/topicName' },
            },
          },
        ],
      },
      [
        ['that will topic', will, 'iot:Connect', 'client/c', 'allow'],
        [
          'another will topic',
          { ...will, lastWillTopic: 'arn:aws:iot:::topic/other' },
          'iot:Connect',
          'client/c',
          'implicit',
        ],
        ['no will', clean, 'iot:Connect', 'client/c', 'implicit'],
      ],
    );
  });
});

describe('thing-policy-examples.html', () => {
  describe('connect if the certificate is attached to the thing the policy is evaluated for', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['*'],
            Condition: { Bool: { 'iot:Connection.Thing.IsAttached': ['true'] } },
          },
        ],
      },
      [
        ['attached', attached, 'iot:Connect', 'client/t1', 'allow'],
        ['not attached', unattached, 'iot:Connect', 'client/t1', 'implicit'],
      ],
    );
  });

  describe('publish if attached to a thing of a thing type with an attribute value', () => {
    const typed: PolicyContext = {
      clientId: 't1',
      thingName: 't1',
      thingTypeName: 'Thing_Type_Name',
      thingAttributes: { attributeName: 'attributeValue' },
    };
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: 'arn:aws:iot:us-east-1:123456789012:topic/device/stats',
            Condition: {
              StringEquals: {
                'iot:Connection.Thing.Attributes[attributeName]': 'attributeValue',
                'iot:Connection.Thing.ThingTypeName': 'Thing_Type_Name',
              },
              Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
            },
          },
        ],
      },
      [
        ['that type and attribute', typed, 'iot:Publish', 'topic/device/stats', 'allow'],
        [
          'another attribute value',
          { ...typed, thingAttributes: { attributeName: 'x' } },
          'iot:Publish',
          'topic/device/stats',
          'implicit',
        ],
        [
          'another type',
          { ...typed, thingTypeName: 'Other' },
          'iot:Publish',
          'topic/device/stats',
          'implicit',
        ],
        ['not attached', { clientId: 't1' }, 'iot:Publish', 'topic/device/stats', 'implicit'],
      ],
    );
  });

  describe('publish to a topic that starts with an attribute of the thing', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource:
              'arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.Attributes[attributeName]}/*',
          },
        ],
      },
      [
        [
          'below the attribute',
          { ...attached, thingAttributes: { attributeName: 'a' } },
          'iot:Publish',
          'topic/a/x',
          'allow',
        ],
        ['not attached: the variable does not resolve', unattached, 'iot:Publish', 'topic/a/x', 'implicit'],
      ],
    );
  });
});

describe('basic-policy-variables.html', () => {
  describe('ClientId and SourceIp: publish on my/topic/${iot:ClientId} from 123.45.167.89', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/clientid1'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:ClientId}'],
            Condition: { IpAddress: { 'aws:SourceIp': '123.45.167.89' } },
          },
        ],
      },
      [
        [
          'from that address',
          { clientId: 'clientid1', sourceIp: '123.45.167.89' },
          'iot:Publish',
          'topic/my/topic/clientid1',
          'allow',
        ],
        [
          'from another',
          { clientId: 'clientid1', sourceIp: '123.45.167.90' },
          'iot:Publish',
          'topic/my/topic/clientid1',
          'implicit',
        ],
        [
          'connect is not conditioned',
          { clientId: 'clientid1', sourceIp: '10.0.0.1' },
          'iot:Connect',
          'client/clientid1',
          'allow',
        ],
      ],
    );
  });

  describe('a ${iot:ClientId} topic filter lets a client with id "+" subscribe to my/+/topic', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: ['iot:Subscribe'],
          Resource: ['arn:aws:iot:us-east-1:123456789012:topicfilter/my/${iot:ClientId}/topic'],
        },
      },
      [['client id "+"', { clientId: '+' }, 'iot:Subscribe', 'topicfilter/my/+/topic', 'allow']],
    );
  });

  describe('iot:DomainName: connect only through a given domain (the page lists the variable; policy written after its description)', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/*'],
            Condition: { StringEquals: { 'iot:DomainName': ['iot.example.com'] } },
          },
        ],
      },
      [
        ['that domain', { clientId: 'c', domainName: 'iot.example.com' }, 'iot:Connect', 'client/c', 'allow'],
        ['another', { clientId: 'c', domainName: 'mqtt.example.com' }, 'iot:Connect', 'client/c', 'implicit'],
      ],
    );
  });
});

describe('cert-policy-variables.html', () => {
  describe('publish only with a certificate whose Subject.Organization values are Example Corp or AnyCompany', () => {
    const org = (...values: string[]): PolicyContext => ({
      clientId: 't1',
      thingName: 't1',
      certificate: { 'Subject.Organization': values },
    });
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:Connection.Thing.ThingName}'],
            Condition: {
              'ForAllValues:StringEquals': {
                'iot:Certificate.Subject.Organization.List': ['Example Corp', 'AnyCompany'],
              },
            },
          },
        ],
      },
      [
        ['Example Corp', org('Example Corp'), 'iot:Publish', 'topic/my/topic/t1', 'allow'],
        ['both', org('AnyCompany', 'Example Corp'), 'iot:Publish', 'topic/my/topic/t1', 'allow'],
        ['one not listed', org('Example Corp', 'Other'), 'iot:Publish', 'topic/my/topic/t1', 'implicit'],
      ],
    );
  });
});

describe('certificate-policy-examples.html', () => {
  const cert: PolicyContext = {
    clientId: 't1',
    thingName: 't1',
    certificateId: 'ab12',
    certificate: { 'Subject.CommonName': ['device-1', 'Operator', 'Administrator'] },
  };

  describe('publish to a topic named by the certificateId', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/${iot:CertificateId}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
        ],
      },
      [
        ['its own certificate id', cert, 'iot:Publish', 'topic/ab12', 'allow'],
        ['another', cert, 'iot:Publish', 'topic/cd34', 'implicit'],
        ['as its thing', cert, 'iot:Connect', 'client/t1', 'allow'],
      ],
    );
  });

  describe("publish to a topic named by the subject's common name", () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/${iot:Certificate.Subject.CommonName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
        ],
      },
      [
        ['the first common name', cert, 'iot:Publish', 'topic/device-1', 'allow'],
        ['another value of it', cert, 'iot:Publish', 'topic/Operator', 'implicit'],
      ],
    );
  });

  describe('publish under admin/ when Subject.CommonName.2 is Administrator', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/admin/*'],
            Condition: { StringEquals: { 'iot:Certificate.Subject.CommonName.2': 'Administrator' } },
          },
        ],
      },
      [
        ['the third common name is Administrator', cert, 'iot:Publish', 'topic/admin/x', 'allow'],
        [
          'it is the second',
          { ...cert, certificate: { 'Subject.CommonName': ['device-1', 'Administrator'] } },
          'iot:Publish',
          'topic/admin/x',
          'implicit',
        ],
      ],
    );
  });

  describe('publish on admin/${ThingName} when any Subject.CommonName is Administrator', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/admin/${iot:Connection.Thing.ThingName}'],
            Condition: {
              'ForAnyValue:StringEquals': { 'iot:Certificate.Subject.CommonName.List': 'Administrator' },
            },
          },
        ],
      },
      [
        ['one of them is', cert, 'iot:Publish', 'topic/admin/t1', 'allow'],
        [
          'none is',
          { ...cert, certificate: { 'Subject.CommonName': ['device-1'] } },
          'iot:Publish',
          'topic/admin/t1',
          'implicit',
        ],
        ['no certificate fields', attached, 'iot:Publish', 'topic/admin/t1', 'implicit'],
      ],
    );
  });
});

describe('use-policy-variables.html', () => {
  const serial: PolicyContext = {
    clientId: '10525622389124227206',
    certificate: { SerialNumber: ['10525622389124227206'], 'Subject.Organization': ['IoT Devices'] },
  };

  describe('connect with the serial number as client id; publish under ${Subject.Organization}/device-stats/${ClientId}/', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Certificate.SerialNumber}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: [
              'arn:aws:iot:us-east-1:123456789012:topic/${iot:Certificate.Subject.Organization}/device-stats/${iot:ClientId}/*',
            ],
          },
        ],
      },
      [
        ['the serial number in decimal', serial, 'iot:Connect', 'client/10525622389124227206', 'allow'],
        ['the serial number in hex', serial, 'iot:Connect', 'client/921285cbb7a5e086', 'implicit'],
        [
          'the organization topic',
          serial,
          'iot:Publish',
          'topic/IoT Devices/device-stats/10525622389124227206/a',
          'allow',
        ],
        [
          'no Organization: the variable is not populated',
          { ...serial, certificate: { SerialNumber: ['1'] } },
          'iot:Publish',
          'topic//device-stats/10525622389124227206/a',
          'implicit',
        ],
      ],
    );
  });

  describe('Null: connect only when the serial number and subject common name are present', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/*'],
            Condition: {
              Null: {
                'iot:Certificate.SerialNumber': 'false',
                'iot:Certificate.Subject.CommonName': 'false',
              },
            },
          },
        ],
      },
      [
        [
          'both present',
          { clientId: 'c', certificate: { SerialNumber: ['1'], 'Subject.CommonName': ['d'] } },
          'iot:Connect',
          'client/c',
          'allow',
        ],
        [
          'no common name',
          { clientId: 'c', certificate: { SerialNumber: ['1'] } },
          'iot:Connect',
          'client/c',
          'implicit',
        ],
      ],
    );
  });
});

describe('pub-sub-policy.html', () => {
  describe('registered devices (5): publish to any topic prefixed by the thing name', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/*'],
          },
        ],
      },
      [
        ['below its name', attached, 'iot:Publish', 'topic/t1/a/b', 'allow'],
        ["below another thing's", attached, 'iot:Publish', 'topic/t2/a', 'implicit'],
      ],
    );
  });

  describe('registered devices (6): subscribe to ${ThingName}/room* and receive from it', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Subscribe'],
            Resource: [
              'arn:aws:iot:us-east-1:123456789012:topicfilter/${iot:Connection.Thing.ThingName}/room*',
            ],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Receive'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/room*'],
          },
        ],
      },
      [
        ['subscribe to t1/room1', attached, 'iot:Subscribe', 'topicfilter/t1/room1', 'allow'],
        ['receive from t1/room2', attached, 'iot:Receive', 'topic/t1/room2', 'allow'],
        ['subscribe to t1/hall', attached, 'iot:Subscribe', 'topicfilter/t1/hall', 'implicit'],
      ],
    );
  });

  describe('registered devices (4): subscribe to the topic filter some/+/topic only, + being literal', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}'],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Subscribe'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topicfilter/some/+/topic'],
          },
        ],
      },
      [
        ['some/+/topic', attached, 'iot:Subscribe', 'topicfilter/some/+/topic', 'allow'],
        ['some/a/topic', attached, 'iot:Subscribe', 'topicfilter/some/a/topic', 'implicit'],
      ],
    );
  });

  describe('unregistered devices (9): publish below the client id except its bar topic', () => {
    conforms(
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['iot:Connect'],
            Resource: [
              'arn:aws:iot:us-east-1:123456789012:client/client1',
              'arn:aws:iot:us-east-1:123456789012:client/client2',
            ],
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*'],
          },
          {
            Effect: 'Deny',
            Action: ['iot:Publish'],
            Resource: ['arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/bar'],
          },
        ],
      },
      [
        ['client1/foo', { clientId: 'client1' }, 'iot:Publish', 'topic/client1/foo', 'allow'],
        ['client1/bar', { clientId: 'client1' }, 'iot:Publish', 'topic/client1/bar', 'deny'],
      ],
    );
  });
});

describe('basic-jobs-example.html: a policy mixing MQTT actions with Jobs actions', () => {
  conforms(
    {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: ['iot:Connect'],
          Resource: ['arn:aws:iot:us-west-2:57EXAMPLE833:client/uniqueThingName'],
        },
        {
          Effect: 'Allow',
          Action: ['iot:Publish'],
          Resource: [
            'arn:aws:iot:us-west-2:57EXAMPLE833:topic/test/dc/pubtopic',
            'arn:aws:iot:us-west-2:57EXAMPLE833:topic/$aws/events/job/*',
            'arn:aws:iot:us-west-2:57EXAMPLE833:topic/$aws/events/jobExecution/*',
            'arn:aws:iot:us-west-2:57EXAMPLE833:topic/$aws/things/uniqueThingName/jobs/*',
          ],
        },
        {
          Effect: 'Allow',
          Action: ['iot:Subscribe'],
          Resource: [
            'arn:aws:iot:us-west-2:57EXAMPLE833:topicfilter/test/dc/subtopic',
            'arn:aws:iot:us-west-2:57EXAMPLE833:topic/$aws/events/jobExecution/*',
            'arn:aws:iot:us-west-2:57EXAMPLE833:topicfilter/$aws/things/uniqueThingName/jobs/*',
          ],
        },
        {
          Effect: 'Allow',
          Action: ['iot:Receive'],
          Resource: [
            'arn:aws:iot:us-west-2:57EXAMPLE833:topic/test/dc/subtopic',
            'arn:aws:iot:us-west-2:57EXAMPLE833:topic/$aws/things/uniqueThingName/jobs/*',
          ],
        },
        {
          Effect: 'Allow',
          Action: [
            'iot:DescribeJobExecution',
            'iot:GetPendingJobExecutions',
            'iot:StartNextPendingJobExecution',
            'iot:UpdateJobExecution',
          ],
          Resource: ['arn:aws:iot:us-west-2:57EXAMPLE833:topic/$aws/things/uniqueThingName'],
        },
      ],
    },
    [
      ['connect', { clientId: 'uniqueThingName' }, 'iot:Connect', 'client/uniqueThingName', 'allow'],
      [
        'publish a job update',
        { clientId: 'uniqueThingName' },
        'iot:Publish',
        'topic/$aws/things/uniqueThingName/jobs/j/update',
        'allow',
      ],
      [
        'subscribe to its jobs',
        { clientId: 'uniqueThingName' },
        'iot:Subscribe',
        'topicfilter/$aws/things/uniqueThingName/jobs/*',
        'allow',
      ],
      // A topic/ resource never names a topic filter: this Subscribe statement's second resource grants nothing.
      [
        'subscribe via a topic/ resource',
        { clientId: 'uniqueThingName' },
        'iot:Subscribe',
        'topicfilter/$aws/events/jobExecution/x',
        'implicit',
      ],
      // The Jobs actions authorise AWS's HTTP API; they grant no MQTT action on their topic.
      [
        'the Jobs statement grants no publish',
        { clientId: 'uniqueThingName' },
        'iot:Publish',
        'topic/$aws/things/uniqueThingName',
        'implicit',
      ],
    ],
  );
});

describe('action-resources.html: every action on the resource the page lists for it', () => {
  conforms(
    {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: ['iot:AssumeRoleWithCertificate'],
          Resource: 'arn:aws:iot:us-east-1:123456789012:rolealias/CredentialProviderRole_alias',
        },
        {
          Effect: 'Allow',
          Action: ['iot:Connect', 'iot:DeleteConnection'],
          Resource: 'arn:aws:iot:us-east-1:123456789012:client/myClientId',
        },
        {
          Effect: 'Allow',
          Action: [
            'iot:DeleteThingShadow',
            'iot:GetThingShadow',
            'iot:UpdateThingShadow',
            'iotjobsdata:DescribeJobExecution',
          ],
          Resource: [
            'arn:aws:iot:us-east-1:123456789012:thing/thingOne',
            'arn:aws:iot:us-east-1:123456789012:thing/thingOne/shadowOne',
          ],
        },
        {
          Effect: 'Allow',
          Action: ['iot:GetRetainedMessage', 'iot:Publish', 'iot:Receive', 'iot:RetainPublish'],
          Resource: 'arn:aws:iot:us-east-1:123456789012:topic/myTopicName',
        },
        {
          Effect: 'Allow',
          Action: ['iot:Subscribe'],
          Resource: 'arn:aws:iot:us-east-1:123456789012:topicfilter/myTopicFilter',
        },
        {
          Effect: 'Allow',
          Action: ['iot:ListNamedShadowsForThing', 'iot:ListRetainedMessages'],
          Resource: '*',
        },
      ],
    },
    [
      ['connect', { clientId: 'myClientId' }, 'iot:Connect', 'client/myClientId', 'allow'],
      ['publish', { clientId: 'c' }, 'iot:Publish', 'topic/myTopicName', 'allow'],
      ['retain', { clientId: 'c' }, 'iot:RetainPublish', 'topic/myTopicName', 'allow'],
      ['receive', { clientId: 'c' }, 'iot:Receive', 'topic/myTopicName', 'allow'],
      ['subscribe', { clientId: 'c' }, 'iot:Subscribe', 'topicfilter/myTopicFilter', 'allow'],
      ['a thing ARN names no topic', { clientId: 'c' }, 'iot:Publish', 'topic/thingOne', 'implicit'],
      [
        '"*" with only ignored actions grants nothing',
        { clientId: 'c' },
        'iot:Publish',
        'topic/other',
        'implicit',
      ],
    ],
  );
});

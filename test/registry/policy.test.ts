// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/common/index.js';
import {
  compilePolicies,
  type Decision,
  evaluate,
  type IotAction,
  MAX_POLICY_DOCUMENT_CHARS,
  type PolicyContext,
  type PolicyDocument,
  parsePolicyDocument,
} from '../../src/registry/policy/index.js';

function show(d: Decision): string {
  if (d.effect === 'allow') return `allow ${d.policy}@${d.version}#${d.statement}`;
  if (d.reason === 'explicit') return `deny ${d.policy}@${d.version}#${d.statement}`;
  return 'implicit';
}

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

const device = parsePolicyDocument({
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Action: 'iot:Connect',
      Resource: 'arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}',
    },
    {
      Effect: 'Allow',
      Action: ['iot:Publish', 'iot:Receive'],
      Resource: 'topic/things/${iot:Connection.Thing.ThingName}/*',
    },
    {
      Effect: 'Allow',
      Action: 'iot:Subscribe',
      Resource: 'topicfilter/things/${iot:Connection.Thing.ThingName}/*',
    },
    {
      Effect: 'Allow',
      Action: 'iot:P*',
      Resource: 'topic/fleet/${iot:Connection.Thing.ThingTypeName}/status',
    },
    {
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: 'topic/site/${iot:Connection.Thing.Attributes[site]}/telemetry',
    },
    { Effect: 'Allow', Action: 'iot:Subscribe', Resource: ['topicfilter/cmd/+', 'topicfilter/all/#'] },
    { Effect: 'Allow', Action: 'iot:Receive', Resource: 'topic/cmd/?/go' },
    { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/attached/${iot:Connection.Thing.IsAttached}' },
  ],
});

const guard = parsePolicyDocument({
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Deny', Action: 'iot:*', Resource: ['topic/things/*/admin/*', 'topicfilter/things/*/admin/*'] },
    { Effect: 'Deny', Action: 'iot:Connect', Resource: 'client/banned-*' },
    { Effect: 'Allow', Action: '*', Resource: 'arn:aws:iot:*:*:topic/public/*' },
  ],
});

const extras = parsePolicyDocument(
  JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/echo/${iot:ClientId}' },
      { Effect: 'Allow', Action: 'IOT:subscribe', Resource: 'topicfilter/lower/x' },
      { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/esc/${*}/${?}/${$}{x}' },
      { Effect: 'Allow', Action: 'iot:UpdateThingShadow', Resource: '*' },
      { Effect: 'Allow', Action: ['iot:Connect', 'iot:Publish'], Resource: 'topic/mixed' },
      { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/a*b*c?d' },
    ],
  }),
);

const set = compilePolicies([
  { name: 'device', version: '3', document: device },
  { name: 'guard', version: '1', document: guard },
  { name: 'extras', version: '2', document: extras },
]);

const bare: PolicyContext = { clientId: 'c1' };
const thing: PolicyContext = {
  clientId: 'c1',
  thingName: 't1',
  thingTypeName: 'sensor',
  thingAttributes: { site: 'berlin' },
};
const untyped: PolicyContext = { clientId: 'c1', thingName: 't1' };
const starry: PolicyContext = { clientId: 'a*' };

describe('evaluate', () => {
  it.each<[string, PolicyContext, IotAction, string, string]>([
    // Allow, ARN resources, ${iot:ClientId}
    [
      'connect with own client id (ARN resource, ClientId variable)',
      bare,
      'iot:Connect',
      'client/c1',
      'allow device@3#0',
    ],
    ['connect with another client id', bare, 'iot:Connect', 'client/c2', 'implicit'],
    [
      'explicit deny on connect',
      { clientId: 'banned-7' },
      'iot:Connect',
      'client/banned-7',
      'deny guard@1#1',
    ],
    // ThingName variable, with and without a thing
    ['publish below own thing', thing, 'iot:Publish', 'topic/things/t1/temp', 'allow device@3#1'],
    ['"*" spans levels', thing, 'iot:Publish', 'topic/things/t1/a/b/c', 'allow device@3#1'],
    ['"*" needs the text before it', thing, 'iot:Publish', 'topic/things/t1', 'implicit'],
    ['"*" matches the empty string', thing, 'iot:Publish', 'topic/things/t1/', 'allow device@3#1'],
    ['publish below another thing', thing, 'iot:Publish', 'topic/things/t2/temp', 'implicit'],
    ['ThingName unavailable without a thing', bare, 'iot:Publish', 'topic/things/t1/temp', 'implicit'],
    ['receive below own thing', thing, 'iot:Receive', 'topic/things/t1/cmd', 'allow device@3#1'],
    [
      'subscribe to own thing filter with #',
      thing,
      'iot:Subscribe',
      'topicfilter/things/t1/#',
      'allow device@3#2',
    ],
    [
      'subscribe to own thing filter with +',
      thing,
      'iot:Subscribe',
      'topicfilter/things/t1/+/x',
      'allow device@3#2',
    ],
    // explicit Deny in another policy wins over an Allow
    [
      'deny in another policy wins (publish)',
      thing,
      'iot:Publish',
      'topic/things/t1/admin/x',
      'deny guard@1#0',
    ],
    [
      'deny in another policy wins (subscribe)',
      thing,
      'iot:Subscribe',
      'topicfilter/things/t1/admin/#',
      'deny guard@1#0',
    ],
    ['deny applies without any allow', bare, 'iot:Receive', 'topic/things/zz/admin/y', 'deny guard@1#0'],
    // ThingTypeName and action prefix wildcard
    [
      'iot:P* grants Publish, ThingTypeName resolved',
      thing,
      'iot:Publish',
      'topic/fleet/sensor/status',
      'allow device@3#3',
    ],
    ['ThingTypeName of another type', thing, 'iot:Publish', 'topic/fleet/camera/status', 'implicit'],
    [
      'ThingTypeName unavailable: thing has no type',
      untyped,
      'iot:Publish',
      'topic/fleet/sensor/status',
      'implicit',
    ],
    ['ThingTypeName unavailable: no thing', bare, 'iot:Publish', 'topic/fleet//status', 'implicit'],
    [
      'iot:P* does not grant Subscribe',
      thing,
      'iot:Subscribe',
      'topicfilter/fleet/sensor/status',
      'implicit',
    ],
    [
      'iot:P* does not grant RetainPublish',
      thing,
      'iot:RetainPublish',
      'topic/fleet/sensor/status',
      'implicit',
    ],
    // attribute variables
    ['attribute resolved', thing, 'iot:Publish', 'topic/site/berlin/telemetry', 'allow device@3#4'],
    ['attribute with another value', thing, 'iot:Publish', 'topic/site/paris/telemetry', 'implicit'],
    ['attribute missing on the thing', untyped, 'iot:Publish', 'topic/site//telemetry', 'implicit'],
    [
      'attributes ignored without a thing',
      { clientId: 'c1', thingAttributes: { site: 'berlin' } },
      'iot:Publish',
      'topic/site/berlin/telemetry',
      'implicit',
    ],
    [
      'attribute named like an Object.prototype member',
      { clientId: 'c1', thingName: 't1', thingAttributes: {} },
      'iot:Publish',
      'topic/site/function Object() { [native code] }/telemetry',
      'implicit',
    ],
    // IsAttached
    ['IsAttached is true with a thing', thing, 'iot:Publish', 'topic/attached/true', 'allow device@3#7'],
    ['IsAttached is false without a thing', bare, 'iot:Publish', 'topic/attached/false', 'allow device@3#7'],
    ['IsAttached is not true without a thing', bare, 'iot:Publish', 'topic/attached/true', 'implicit'],
    // MQTT wildcards are literal characters in a policy
    ['literal + allows a subscription to +', bare, 'iot:Subscribe', 'topicfilter/cmd/+', 'allow device@3#5'],
    ['literal + does not allow a concrete level', bare, 'iot:Subscribe', 'topicfilter/cmd/a', 'implicit'],
    ['literal # allows a subscription to #', bare, 'iot:Subscribe', 'topicfilter/all/#', 'allow device@3#5'],
    ['literal # does not allow deeper levels', bare, 'iot:Subscribe', 'topicfilter/all/x/y', 'implicit'],
    // ? wildcard
    ['? matches one character', bare, 'iot:Receive', 'topic/cmd/a/go', 'allow device@3#6'],
    ['? matches a slash too', bare, 'iot:Receive', 'topic/cmd///go', 'allow device@3#6'],
    ['? does not match two characters', bare, 'iot:Receive', 'topic/cmd/ab/go', 'implicit'],
    ['? does not match nothing', bare, 'iot:Receive', 'topic/cmd//go', 'implicit'],
    ['several * and ?', bare, 'iot:Publish', 'topic/a-b-c-b-c-d', 'allow extras@2#5'],
    ['several * and ? (no fit)', bare, 'iot:Publish', 'topic/a-b-cd', 'implicit'],
    // '*' action and ARN with wildcard region/account
    [
      '"*" action grants Subscribe? no: resource is a topic',
      bare,
      'iot:Subscribe',
      'topicfilter/public/x',
      'implicit',
    ],
    ['"*" action grants Publish on ARN topic', bare, 'iot:Publish', 'topic/public/news', 'allow guard@1#2'],
    ['"*" action grants RetainPublish', bare, 'iot:RetainPublish', 'topic/public/news', 'allow guard@1#2'],
    ['RetainPublish is not implied by Publish', thing, 'iot:RetainPublish', 'topic/things/t1/x', 'implicit'],
    // literal substitution of variables
    ['client id with * matches itself', starry, 'iot:Publish', 'topic/echo/a*', 'allow extras@2#0'],
    ['client id with * is no wildcard', starry, 'iot:Publish', 'topic/echo/abc', 'implicit'],
    ['client id ? is no wildcard', { clientId: '?' }, 'iot:Publish', 'topic/echo/x', 'implicit'],
    ['empty client id is a value', { clientId: '' }, 'iot:Publish', 'topic/echo/', 'allow extras@2#0'],
    // case-insensitive action names, escapes, ignored actions
    ['IOT:subscribe matches iot:Subscribe', bare, 'iot:Subscribe', 'topicfilter/lower/x', 'allow extras@2#1'],
    ['${*} ${?} ${$} are literal', bare, 'iot:Publish', 'topic/esc/*/?/${x}', 'allow extras@2#2'],
    ['${*} is not a wildcard', bare, 'iot:Publish', 'topic/esc/abc/?/${x}', 'implicit'],
    ['ignored actions grant nothing', bare, 'iot:Publish', 'topic/anything', 'implicit'],
    // resource type must fit the action
    ['topic resource does not grant Connect', bare, 'iot:Connect', 'client/mixed', 'implicit'],
    ['the same statement grants Publish', bare, 'iot:Publish', 'topic/mixed', 'allow extras@2#4'],
    ['Connect on a topic resource', bare, 'iot:Connect', 'topic/c1', 'implicit'],
    ['Subscribe on a topic (not topicfilter)', thing, 'iot:Subscribe', 'topic/things/t1/x', 'implicit'],
    ['Publish on a topicfilter', thing, 'iot:Publish', 'topicfilter/things/t1/x', 'implicit'],
    ['Receive on a client', thing, 'iot:Receive', 'client/c1', 'implicit'],
    ['resource without a type', thing, 'iot:Publish', 'things/t1/x', 'implicit'],
  ])('%s', (_name, context, action, resource, expected) => {
    expect(show(evaluate(set, context, action, resource))).toBe(expected);
  });

  it('a "*" resource matches every type and an explicit Deny beats every Allow', () => {
    const lockdown = compilePolicies([
      {
        name: 'open',
        version: '1',
        document: parsePolicyDocument({
          Version: '2012-10-17',
          Statement: { Effect: 'Allow', Action: '*', Resource: '*' },
        }),
      },
      {
        name: 'lock',
        version: '4',
        document: parsePolicyDocument({
          Version: '2012-10-17',
          Statement: { Effect: 'Deny', Action: 'iot:Connect', Resource: '*' },
        }),
      },
    ]);
    expect(show(evaluate(lockdown, bare, 'iot:Connect', 'client/c1'))).toBe('deny lock@4#0');
    expect(show(evaluate(lockdown, bare, 'iot:Publish', 'topic/x'))).toBe('allow open@1#0');
    expect(show(evaluate(lockdown, bare, 'iot:Subscribe', 'topicfilter/#'))).toBe('allow open@1#0');
    expect(show(evaluate(lockdown, bare, 'iot:Receive', 'topic/x'))).toBe('allow open@1#0');
  });

  it('denies implicitly with no policies', () => {
    expect(evaluate(compilePolicies([]), bare, 'iot:Connect', 'client/c1')).toEqual({
      effect: 'deny',
      reason: 'implicit',
    });
  });

  it('is pure: the same inputs give the same frozen decision', () => {
    const first = evaluate(set, thing, 'iot:Publish', 'topic/things/t1/temp');
    const second = evaluate(set, thing, 'iot:Publish', 'topic/things/t1/temp');
    expect(second).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(first).toEqual({ effect: 'allow', policy: 'device', version: '3', statement: 1 });
  });

  it('reports which policies it compiled', () => {
    expect(set.policies).toEqual([
      { name: 'device', version: '3' },
      { name: 'guard', version: '1' },
      { name: 'extras', version: '2' },
    ]);
  });

  it('compilePolicies rejects a document that parsePolicyDocument would reject', () => {
    const bad: PolicyDocument = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: ['iot:Publish'], Resource: ['thing/x'] }],
    };
    const err = validationError(() => compilePolicies([{ name: 'p', version: '1', document: bad }]));
    expect(err.code).toBe('IOTDR_POLICY_INVALID');
    expect(err.issues[0]?.path).toBe('policies.0.document.Statement.0.Resource.0');
  });

  // Randomised cross-check of the block matcher against a RegExp built from the same pattern.
  it('matches like a reference RegExp on random patterns', () => {
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const pieces = ['a', 'b', '/', '*', '?', '${iot:ClientId}', '${iot:Connection.Thing.ThingName}'];
    const clientIds = ['a', 'ab', 'a*', '/', ''];
    let checked = 0;
    let allowed = 0;
    for (let round = 0; round < 400; round++) {
      const parts = Array.from({ length: 1 + random(7) }, () => pieces[random(pieces.length)] as string);
      const context: PolicyContext = { clientId: clientIds[random(clientIds.length)] as string };
      if (random(2) === 0) context.thingName = 'b?';
      const source = parts
        .map((p) => {
          if (p === '*') return '[\\s\\S]*';
          if (p === '?') return '[\\s\\S]';
          if (p === '${iot:ClientId}') return escapeRegExp(context.clientId);
          if (p.startsWith('${'))
            return context.thingName === undefined ? '(?!)' : escapeRegExp(context.thingName);
          return escapeRegExp(p);
        })
        .join('');
      const reference = new RegExp(`^${source}$`);
      const compiled = compilePolicies([
        {
          name: 'fuzz',
          version: '1',
          document: parsePolicyDocument({
            Version: '2012-10-17',
            Statement: { Effect: 'Allow', Action: 'iot:Publish', Resource: `topic/${parts.join('')}` },
          }),
        },
      ]);
      for (let k = 0; k < 30; k++) {
        const chars = (n: number): string =>
          Array.from({ length: n }, () => ['a', 'b', '/', '*', '?'][random(5)]).join('');
        // Half the topics are instances of the pattern, so that both outcomes are well represented.
        const topic =
          k % 2 === 0
            ? chars(random(8))
            : parts
                .map((p) => {
                  if (p === '*') return chars(random(4));
                  if (p === '?') return chars(1);
                  if (p === '${iot:ClientId}') return context.clientId;
                  if (p.startsWith('${')) return context.thingName ?? 'b?';
                  return p;
                })
                .join('');
        const decision = evaluate(compiled, context, 'iot:Publish', `topic/${topic}`).effect === 'allow';
        if (decision) allowed++;
        expect({ pattern: parts.join(''), topic, context, allowed: decision }).toEqual({
          pattern: parts.join(''),
          topic,
          context,
          allowed: reference.test(topic),
        });
        checked++;
      }
    }
    expect(checked).toBe(12_000);
    // Both outcomes are well represented, so the cross-check means something.
    expect(allowed).toBeGreaterThan(1000);
    expect(checked - allowed).toBeGreaterThan(1000);
  });
});

describe('parsePolicyDocument', () => {
  it('normalizes statements, actions and resources to arrays and freezes the result', () => {
    const doc = parsePolicyDocument({
      Version: '2012-10-17',
      Id: 'device-policy',
      Statement: { Sid: 'Conn', Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/x' },
    });
    expect(doc).toEqual({
      Version: '2012-10-17',
      Id: 'device-policy',
      Statement: [{ Sid: 'Conn', Effect: 'Allow', Action: ['iot:Connect'], Resource: ['client/x'] }],
    });
    expect(Object.isFrozen(doc)).toBe(true);
    expect(Object.isFrozen(doc.Statement[0]?.Action)).toBe(true);
  });

  it.each<[string, unknown]>([
    [
      'JSON text',
      '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["iot:*"],"Resource":["*"]}]}',
    ],
    [
      'Version 2008-10-17 without variables',
      { Version: '2008-10-17', Statement: { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/a' } },
    ],
    [
      'other AWS IoT actions',
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: ['iot:UpdateThingShadow', 'iot:GetRetainedMessage', 'iotjobsdata:DescribeJobExecution'],
          Resource: '*',
        },
      },
    ],
    [
      'action wildcards',
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: ['*', 'iot:*', 'iot:P*', 'iot:?ublish', 'IOT:CONNECT'],
          Resource: '*',
        },
      },
    ],
    [
      'ARNs in other partitions and placeholder regions',
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: [
            'arn:aws-cn:iot:cn-north-1:1:client/a',
            'arn:aws:iot:[AWS_REGION]:[AWS_ACCOUNT_ID]:client/b',
            'arn:aws:iot:*:*:*',
          ],
        },
      },
    ],
    [
      'topics containing $ and :',
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: 'arn:aws:iot:eu-west-1:1:topic/$aws/things/a:b/shadow/update',
        },
      },
    ],
    [
      'Condition, NotAction and NotResource',
      {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'iot:Connect',
            Resource: '*',
            Condition: { Bool: { 'iot:Connection.Thing.IsAttached': ['true'] } },
          },
          { Effect: 'Deny', NotAction: 'iot:Connect', NotResource: 'topic/public/*' },
        ],
      },
    ],
    [
      "other services' actions and AWS IoT resources the broker never asks about",
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: ['iot:Publish', 'iot:GetThingShadow', 'iot:CreateThing', 'greengrass:*', 's3:GetObject'],
          Resource: [
            'arn:aws:iot:us-east-1:1:thing/t1',
            'arn:aws:iot:us-east-1:1:rolealias/r',
            'arn:aws:iot:us-east-1:1:job/*',
            'arn:aws:s3:::bucket/x',
            'arn:aws:iot:us-east-1:1:topic/x',
          ],
        },
      },
    ],
    [
      'wildcards inside ARN segments',
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: 'iot:*',
          Resource: ['arn:aws:iot:*:*:topic/a', 'arn:aws:iot:us-*:123*:client/*', 'arn:aws:io?:*:*:t*'],
        },
      },
    ],
    [
      'a missing Version',
      { Statement: { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:ClientId}' } },
    ],
    [
      'certificate and connection variables',
      {
        Version: '2012-10-17',
        Statement: {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: [
            'topic/${iot:Certificate.Subject.CommonName}/${iot:Certificate.Issuer.Organization.1}',
            'topic/${iot:CertificateId}/${aws:SourceIp}/${iot:DomainName}/${iot:Certificate.SerialNumber}',
            'topic/${IOT:CLIENTID}',
          ],
        },
      },
    ],
    [
      'whitespace does not count towards the size limit',
      `{"Version":"2012-10-17",${' '.repeat(5000)}"Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}`,
    ],
  ])('accepts %s', (_name, input) => {
    expect(() => parsePolicyDocument(input)).not.toThrow();
  });

  it(`accepts exactly ${MAX_POLICY_DOCUMENT_CHARS} characters and rejects one more`, () => {
    const sized = (n: number) => {
      const base = {
        Version: '2012-10-17',
        Statement: { Sid: '', Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
      };
      base.Statement.Sid = 'x'.repeat(n - JSON.stringify(base).length);
      return base;
    };
    expect(JSON.stringify(sized(MAX_POLICY_DOCUMENT_CHARS))).toHaveLength(MAX_POLICY_DOCUMENT_CHARS);
    expect(() => parsePolicyDocument(sized(MAX_POLICY_DOCUMENT_CHARS))).not.toThrow();
    const err = validationError(() => parsePolicyDocument(sized(MAX_POLICY_DOCUMENT_CHARS + 1)));
    expect(err.issues).toEqual([
      { path: 'policyDocument', message: expect.stringContaining('2049 characters') },
    ]);
  });

  const ok = { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/a' };
  const doc = (...Statement: unknown[]) => ({ Version: '2012-10-17', Statement });

  const cond = (Condition: unknown) => doc({ ...ok, Condition });

  it.each<[string, unknown, string, string]>([
    [
      'Action with NotAction',
      doc({ ...ok, NotAction: 'iot:Connect' }),
      'policyDocument.Statement.0.NotAction',
      'Action or NotAction, not both',
    ],
    [
      'Resource with NotResource',
      doc({ ...ok, NotResource: 'topic/b' }),
      'policyDocument.Statement.0.NotResource',
      'Resource or NotResource, not both',
    ],
    [
      'Principal',
      doc({ ...ok, Principal: '*' }),
      'policyDocument.Statement.0.Principal',
      "'Principal' has no place in an AWS IoT policy",
    ],
    [
      'an unknown statement key',
      doc({ ...ok, Priority: 1 }),
      'policyDocument.Statement.0.Priority',
      'allowed keys are Sid, Effect, Action, NotAction, Resource, NotResource, Condition',
    ],
    [
      'a Condition that is not an object',
      cond('StringEquals'),
      'policyDocument.Statement.0.Condition',
      'Condition must be an object',
    ],
    [
      'an unknown condition operator',
      cond({ StringEqual: { 'iot:ClientId': 'a' } }),
      'policyDocument.Statement.0.Condition.StringEqual',
      "unknown condition operator 'StringEqual'",
    ],
    [
      'a condition operator in the wrong case',
      cond({ stringEquals: { 'iot:ClientId': 'a' } }),
      'policyDocument.Statement.0.Condition.stringEquals',
      "did you mean 'StringEquals'?",
    ],
    [
      'BinaryEquals',
      cond({ BinaryEquals: { 'iot:ClientId': 'YQ==' } }),
      'policyDocument.Statement.0.Condition.BinaryEquals',
      'no key iotdr knows holds binary data',
    ],
    [
      'Null with IfExists',
      cond({ NullIfExists: { 'iot:ClientId': 'true' } }),
      'policyDocument.Statement.0.Condition.NullIfExists',
      'Null takes neither',
    ],
    [
      'an operator mapped to a string',
      cond({ StringEquals: 'iot:ClientId' }),
      'policyDocument.Statement.0.Condition.StringEquals',
      'must map condition keys to values',
    ],
    [
      'an unknown condition key',
      cond({ StringEquals: { 'iot:Foo': 'a' } }),
      'policyDocument.Statement.0.Condition.StringEquals.iot:Foo',
      "unknown key 'iot:Foo'",
    ],
    [
      'an IAM key iotdr has no value for',
      cond({ Bool: { 'aws:SecureTransport': 'true' } }),
      'policyDocument.Statement.0.Condition.Bool.aws:SecureTransport',
      "unknown key 'aws:SecureTransport'",
    ],
    [
      'a certificate attribute AWS IoT does not name',
      cond({ StringEquals: { 'iot:Certificate.Subject.Locality': 'Berlin' } }),
      'policyDocument.Statement.0.Condition.StringEquals.iot:Certificate.Subject.Locality',
      "unknown certificate key 'iot:Certificate.Subject.Locality'",
    ],
    [
      'a certificate value past the fifth',
      cond({ StringEquals: { 'iot:Certificate.Subject.CommonName.5': 'x' } }),
      'policyDocument.Statement.0.Condition.StringEquals.iot:Certificate.Subject.CommonName.5',
      'keeps the first 5 values',
    ],
    [
      'a list key without ForAnyValue/ForAllValues',
      cond({ StringEquals: { 'iot:Certificate.Subject.Organization.List': 'Example Corp' } }),
      'policyDocument.Statement.0.Condition.StringEquals.iot:Certificate.Subject.Organization.List',
      'holds a list of values: test it with ForAnyValue:StringEquals',
    ],
    [
      'a list variable in a resource',
      doc({ ...ok, Resource: 'topic/${iot:Certificate.Subject.Organization.List}' }),
      'policyDocument.Statement.0.Resource',
      'holds a list of values',
    ],
    [
      'a condition value that is an object',
      cond({ StringEquals: { 'iot:ClientId': [{ a: 1 }] } }),
      'policyDocument.Statement.0.Condition.StringEquals.iot:ClientId.0',
      'must be a string, number or boolean',
    ],
    [
      'a number that is not one',
      cond({ NumericLessThan: { 'iot:Connection.Thing.Attributes[floor]': '3rd' } }),
      'policyDocument.Statement.0.Condition.NumericLessThan.iot:Connection.Thing.Attributes[floor]',
      "'3rd' is not a number",
    ],
    [
      'a date that is not one',
      cond({ DateLessThan: { 'aws:CurrentTime': 'tomorrow' } }),
      'policyDocument.Statement.0.Condition.DateLessThan.aws:CurrentTime',
      "'tomorrow' is not a date",
    ],
    [
      'an IP range that is not one',
      cond({ IpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '10.0.0.0/33'] } }),
      'policyDocument.Statement.0.Condition.IpAddress.aws:SourceIp.1',
      "'10.0.0.0/33' is not an IP address or CIDR range",
    ],
    [
      'a Bool that is not one',
      cond({ Bool: { 'iot:Connection.Thing.IsAttached': 'yes' } }),
      'policyDocument.Statement.0.Condition.Bool.iot:Connection.Thing.IsAttached',
      "'yes' is not 'true' or 'false'",
    ],
    [
      'an ARN that is not one',
      cond({ ArnEquals: { 'iot:LastWillTopic': 'topic/will' } }),
      'policyDocument.Statement.0.Condition.ArnEquals.iot:LastWillTopic',
      "'topic/will' is not an ARN",
    ],
    [
      'an unknown variable in a condition value',
      cond({ StringEquals: { 'iot:ClientId': '${iot:Thing.ThingName}' } }),
      'policyDocument.Statement.0.Condition.StringEquals.iot:ClientId',
      'unknown policy variable ${iot:Thing.ThingName}',
    ],
    [
      'a key in the wrong case',
      doc({ Effect: 'Allow', action: 'iot:Publish', Action: 'iot:Publish', Resource: '*' }),
      'policyDocument.Statement.0.action',
      "did you mean 'Action'?",
    ],
    [
      'an unknown document key',
      { ...doc(ok), Comment: 'x' },
      'policyDocument.Comment',
      'allowed keys are Version, Id, Statement',
    ],
    [
      'a bad Effect',
      doc(ok, { ...ok, Effect: 'Permit' }),
      'policyDocument.Statement.1.Effect',
      "'Allow' or 'Deny'",
    ],
    [
      'a lower-case Effect',
      doc({ ...ok, Effect: 'allow' }),
      'policyDocument.Statement.0.Effect',
      'case-sensitive',
    ],
    [
      'a missing Effect',
      doc({ Action: 'iot:Publish', Resource: '*' }),
      'policyDocument.Statement.0.Effect',
      'Effect is required',
    ],
    ['an empty Statement', doc(), 'policyDocument.Statement', 'must not be empty'],
    ['a missing Statement', { Version: '2012-10-17' }, 'policyDocument.Statement', 'Statement is required'],
    [
      'a statement that is not an object',
      doc('allow all'),
      'policyDocument.Statement.0',
      'must be an object',
    ],
    [
      'an unsupported Version',
      { ...doc(ok), Version: '2020-01-01' },
      'policyDocument.Version',
      "use '2012-10-17'",
    ],
    [
      'an unknown action in an array',
      doc(ok, { ...ok, Action: ['iot:Publish', 'iot:Pubish'] }),
      'policyDocument.Statement.1.Action.1',
      'iot:Connect, iot:Publish, iot:Subscribe, iot:Receive',
    ],
    [
      'a misspelt action as a string',
      doc({ ...ok, Action: 'iot:Pubish' }),
      'policyDocument.Statement.0.Action',
      "'iot:Pubish' is not an AWS IoT action (did you mean 'iot:Publish'?)",
    ],
    [
      'a misspelt action of the ones AWS IoT ignores here',
      doc({ ...ok, Action: 'iot:UpdateThingShadows' }),
      'policyDocument.Statement.0.Action',
      "did you mean 'iot:UpdateThingShadow'?",
    ],
    [
      'an action without a service',
      doc({ ...ok, NotAction: ['Publish'], Action: undefined }),
      'policyDocument.Statement.0.NotAction.0',
      "'Publish' is not an action",
    ],
    [
      'an empty Action array',
      doc({ ...ok, Action: [] }),
      'policyDocument.Statement.0.Action',
      'must not be empty',
    ],
    [
      'a missing Resource',
      doc({ Effect: 'Allow', Action: 'iot:Publish' }),
      'policyDocument.Statement.0.Resource',
      'Resource (or NotResource) is required',
    ],
    [
      'a Resource that is a number',
      doc({ ...ok, Resource: ['topic/a', 7] }),
      'policyDocument.Statement.0.Resource.1',
      'non-empty string, not a number',
    ],
    [
      'an unknown variable',
      doc({ ...ok, Resource: ['topic/${iot:Thing.ThingName}'] }),
      'policyDocument.Statement.0.Resource.0',
      'unknown policy variable ${iot:Thing.ThingName}',
    ],
    [
      'a variable named like an Object.prototype member',
      doc({ ...ok, Resource: 'topic/${toString}' }),
      'policyDocument.Statement.0.Resource',
      'unknown policy variable ${toString}',
    ],
    [
      'an unclosed variable',
      doc({ ...ok, Resource: 'topic/${iot:ClientId' }),
      'policyDocument.Statement.0.Resource',
      'is not closed',
    ],
    [
      'a bad attribute name',
      doc({ ...ok, Resource: 'topic/${iot:Connection.Thing.Attributes[a b]}' }),
      'policyDocument.Statement.0.Resource',
      "attribute name 'a b'",
    ],
    [
      'a bad resource prefix',
      doc({ ...ok, Resource: ['thing/x'] }),
      'policyDocument.Statement.0.Resource.0',
      'client/CLIENT_ID, topic/TOPIC and topicfilter/TOPIC_FILTER',
    ],
    [
      'a resource with a wildcard type',
      doc({ ...ok, Resource: 'topic*' }),
      'policyDocument.Statement.0.Resource',
      "'topic*' is not a resource",
    ],
    [
      'a resource naming nothing',
      doc({ ...ok, Resource: 'topic/' }),
      'policyDocument.Statement.0.Resource',
      'names no topic',
    ],
    [
      'a truncated ARN',
      doc({ ...ok, Resource: 'arn:aws:iot:topic/x' }),
      'policyDocument.Statement.0.Resource',
      'is not an ARN',
    ],
    [
      'an ARN naming no topic',
      doc({ ...ok, Resource: 'arn:aws:iot:us-east-1:1:topic/' }),
      'policyDocument.Statement.0.Resource',
      'names no topic',
    ],
    [
      'JSON text that does not parse',
      '{"Version": "2012-10-17", "Statement": [',
      'policyDocument',
      'is not valid JSON',
    ],
    ['JSON text that is not an object', '[1, 2]', 'policyDocument', 'must be a JSON object'],
    ['a value that is not an object', 42, 'policyDocument', 'must be a JSON object'],
    [
      'an oversize document',
      doc(
        ...Array.from({ length: 40 }, (_, i) => ({
          ...ok,
          Resource: `topic/some/rather/long/topic/name/${i}`,
        })),
      ),
      'policyDocument',
      'limit',
    ],
  ])('rejects %s', (_name, input, path, fragment) => {
    const err = validationError(() => parsePolicyDocument(input));
    expect(err.code).toBe('IOTDR_POLICY_INVALID');
    expect(err.status).toBe(400);
    const issue = err.issues.find((i) => i.path === path);
    expect(issue, `issues were ${JSON.stringify(err.issues)}`).toBeDefined();
    expect(issue?.message).toContain(fragment);
    expect(err.message).toContain(path);
  });

  it('reports every problem at once, below the given path prefix', () => {
    const err = validationError(() =>
      parsePolicyDocument(
        {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Permit',
              Action: 'iot:Pubish',
              Resource: 'thing/x',
              Condition: { Foo: {} },
              Principal: '*',
            },
          ],
        },
        'body.document',
      ),
    );
    expect(err.issues.map((i) => i.path)).toEqual([
      'body.document.Statement.0.Principal',
      'body.document.Statement.0.Effect',
      'body.document.Statement.0.Action',
      'body.document.Statement.0.Resource',
      'body.document.Statement.0.Condition.Foo',
    ]);
  });
});

describe('Condition, NotAction and NotResource (IAM semantics)', () => {
  const one = (statement: Record<string, unknown>, Version = '2012-10-17') =>
    compilePolicies([
      { name: 'p', version: '1', document: parsePolicyDocument({ Version, Statement: statement }) },
    ]);
  const allowed = (
    set: ReturnType<typeof one>,
    context: PolicyContext,
    action: IotAction,
    resource: string,
  ) => evaluate(set, context, action, resource).effect === 'allow';
  const publishIf = (Condition: Record<string, unknown>) =>
    one({ Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/t', Condition });
  const may = (Condition: Record<string, unknown>, context: PolicyContext) =>
    allowed(publishIf(Condition), context, 'iot:Publish', 'topic/t');

  it.each<[string, Record<string, unknown>, PolicyContext, boolean]>([
    // Values of a key are alternatives; a negated operator holds when none matches (NOR).
    [
      'StringEquals, one of the values',
      { StringEquals: { 'iot:ClientId': ['a', 'b'] } },
      { clientId: 'b' },
      true,
    ],
    [
      'StringEquals, none of them',
      { StringEquals: { 'iot:ClientId': ['a', 'b'] } },
      { clientId: 'c' },
      false,
    ],
    [
      'StringNotEquals, one of them',
      { StringNotEquals: { 'iot:ClientId': ['a', 'b'] } },
      { clientId: 'b' },
      false,
    ],
    [
      'StringNotEquals, none of them',
      { StringNotEquals: { 'iot:ClientId': ['a', 'b'] } },
      { clientId: 'c' },
      true,
    ],
    [
      'StringEquals is case-sensitive',
      { StringEquals: { 'iot:ClientId': 'Dev' } },
      { clientId: 'dev' },
      false,
    ],
    [
      'StringEqualsIgnoreCase',
      { StringEqualsIgnoreCase: { 'iot:ClientId': 'Dev' } },
      { clientId: 'dEV' },
      true,
    ],
    [
      'StringNotEqualsIgnoreCase',
      { StringNotEqualsIgnoreCase: { 'iot:ClientId': 'Dev' } },
      { clientId: 'DEV' },
      false,
    ],
    [
      'StringEquals takes * literally',
      { StringEquals: { 'iot:ClientId': 'a*' } },
      { clientId: 'abc' },
      false,
    ],
    ['StringLike with *', { StringLike: { 'iot:ClientId': 'sensor-*' } }, { clientId: 'sensor-9' }, true],
    ['StringLike with ?', { StringLike: { 'iot:ClientId': 'sensor-?' } }, { clientId: 'sensor-10' }, false],
    ['StringNotLike', { StringNotLike: { 'iot:ClientId': 'sensor-*' } }, { clientId: 'cam-1' }, true],
    // Condition key names are case-insensitive, as in IAM.
    ['key names ignore case', { StringEquals: { 'IOT:CLIENTID': 'a' } }, { clientId: 'a' }, true],
    // Every key of an operator, and every operator, must hold.
    [
      'keys of an operator are ANDed',
      { StringEquals: { 'iot:ClientId': 'a', 'iot:Connection.Thing.ThingName': 't' } },
      { clientId: 'a', thingName: 'u' },
      false,
    ],
    [
      'operators are ANDed',
      { StringEquals: { 'iot:ClientId': 'a' }, Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      { clientId: 'a' },
      false,
    ],
    // A missing key: false, true for a negated operator, true for …IfExists; Null tests presence.
    ['missing key', { StringEquals: { 'iot:Connection.Thing.ThingName': 't' } }, { clientId: 'a' }, false],
    [
      'missing key, negated',
      { StringNotEquals: { 'iot:Connection.Thing.ThingName': 't' } },
      { clientId: 'a' },
      true,
    ],
    [
      'missing key, IfExists',
      { StringEqualsIfExists: { 'iot:Connection.Thing.ThingName': 't' } },
      { clientId: 'a' },
      true,
    ],
    [
      'present key, IfExists',
      { StringEqualsIfExists: { 'iot:Connection.Thing.ThingName': 't' } },
      { clientId: 'a', thingName: 'u' },
      false,
    ],
    ['Null true: absent', { Null: { 'iot:Connection.Thing.ThingName': 'true' } }, { clientId: 'a' }, true],
    [
      'Null true: present',
      { Null: { 'iot:Connection.Thing.ThingName': 'true' } },
      { clientId: 'a', thingName: 't' },
      false,
    ],
    [
      'Null false: present',
      { Null: { 'iot:Connection.Thing.ThingName': false } },
      { clientId: 'a', thingName: 't' },
      true,
    ],
    // Variables in values; one that does not resolve matches nothing and makes a negated operator false.
    [
      'a variable in a value',
      { StringEquals: { 'iot:ClientId': '${iot:Connection.Thing.ThingName}' } },
      { clientId: 't', thingName: 't' },
      true,
    ],
    [
      'an unresolved variable in a negated value',
      { StringNotEquals: { 'iot:ClientId': '${iot:Connection.Thing.ThingName}' } },
      { clientId: 'a' },
      false,
    ],
    [
      'a variable value is literal in StringLike',
      { StringLike: { 'iot:Connection.Thing.ThingName': 'x-${iot:ClientId}' } },
      { clientId: '*', thingName: 'x-abc' },
      false,
    ],
    // Numbers, booleans, dates.
    [
      'NumericLessThan on an attribute',
      { NumericLessThan: { 'iot:Connection.Thing.Attributes[floor]': 3 } },
      { clientId: 'a', thingName: 't', thingAttributes: { floor: '2' } },
      true,
    ],
    [
      'a numeric operator on text',
      { NumericNotEquals: { 'iot:Connection.Thing.Attributes[floor]': 3 } },
      { clientId: 'a', thingName: 't', thingAttributes: { floor: 'ground' } },
      false,
    ],
    ['Bool', { Bool: { 'iot:Connection.Thing.IsAttached': true } }, { clientId: 'a', thingName: 't' }, true],
    [
      'DateLessThan on aws:CurrentTime',
      { DateLessThan: { 'aws:CurrentTime': '2030-01-01T00:00:00Z' } },
      { clientId: 'a', now: () => Date.parse('2029-12-31T23:59:59Z') },
      true,
    ],
    [
      'DateGreaterThanEquals on aws:EpochTime',
      { DateGreaterThanEquals: { 'aws:EpochTime': '1893456000' } },
      { clientId: 'a', now: () => Date.parse('2029-12-31T23:59:59Z') },
      false,
    ],
    [
      'aws:CurrentTime without a clock',
      { DateLessThan: { 'aws:CurrentTime': '2030-01-01' } },
      { clientId: 'a' },
      false,
    ],
    [
      'NumericEquals on aws:EpochTime',
      { NumericEquals: { 'aws:EpochTime': 1700000000 } },
      { clientId: 'a', now: () => 1_700_000_000_999 },
      true,
    ],
    // Addresses: CIDR ranges, IPv6, IPv4-mapped IPv6.
    [
      'IpAddress in a range',
      { IpAddress: { 'aws:SourceIp': '203.0.113.0/24' } },
      { clientId: 'a', sourceIp: '203.0.113.9' },
      true,
    ],
    [
      'IpAddress out of it',
      { IpAddress: { 'aws:SourceIp': '203.0.113.0/24' } },
      { clientId: 'a', sourceIp: '198.51.100.1' },
      false,
    ],
    [
      'IpAddress, IPv4-mapped IPv6',
      { IpAddress: { 'aws:SourceIp': '203.0.113.9' } },
      { clientId: 'a', sourceIp: '::ffff:203.0.113.9' },
      true,
    ],
    [
      'IpAddress, IPv6',
      { IpAddress: { 'aws:SourceIp': '2001:db8::/32' } },
      { clientId: 'a', sourceIp: '2001:db8::5' },
      true,
    ],
    [
      'NotIpAddress',
      { NotIpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '192.168.0.0/16'] } },
      { clientId: 'a', sourceIp: '10.1.2.3' },
      false,
    ],
    [
      'NotIpAddress without an address',
      { NotIpAddress: { 'aws:SourceIp': '10.0.0.0/8' } },
      { clientId: 'a' },
      true,
    ],
    // ARNs: region and account are not compared, as in resources.
    [
      'ArnEquals ignores region and account',
      { ArnEquals: { 'iot:LastWillTopic': 'arn:aws:iot:us-east-1:123456789012:topic/will/*' } },
      { clientId: 'a', lastWillTopic: 'arn:aws:iot:::topic/will/a' },
      true,
    ],
    [
      'ArnNotLike',
      { ArnNotLike: { 'iot:LastWillTopic': 'arn:aws:iot:*:*:topic/will/*' } },
      { clientId: 'a', lastWillTopic: 'arn:aws:iot:::topic/other' },
      true,
    ],
    // Set operators over a list key.
    [
      'ForAnyValue: one value matches',
      { 'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': 'LastWill' } },
      { clientId: 'a', connectAttributes: ['PersistentConnect', 'LastWill'] },
      true,
    ],
    [
      'ForAllValues: a value is not listed',
      { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': 'LastWill' } },
      { clientId: 'a', connectAttributes: ['PersistentConnect', 'LastWill'] },
      false,
    ],
    [
      'ForAllValues: the empty set',
      { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': [] } },
      { clientId: 'a', connectAttributes: [] },
      true,
    ],
    [
      'ForAnyValue: the empty set',
      { 'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': 'LastWill' } },
      { clientId: 'a', connectAttributes: [] },
      false,
    ],
    [
      'ForAllValues:StringNotEquals',
      { 'ForAllValues:StringNotEquals': { 'iot:ConnectAttributes': 'PersistentConnect' } },
      { clientId: 'a', connectAttributes: ['LastWill'] },
      true,
    ],
    [
      'ForAnyValue on a single-valued key',
      { 'ForAnyValue:StringLike': { 'iot:ClientId': ['x-*', 'y-*'] } },
      { clientId: 'y-1' },
      true,
    ],
  ])('%s', (_name, condition, context, expected) => {
    expect(may(condition, context)).toBe(expected);
  });

  it('NotAction applies to every evaluated action but those named', () => {
    const set = one({ Effect: 'Allow', NotAction: ['iot:Publish', 'iot:RetainPublish'], Resource: '*' });
    expect(allowed(set, bare, 'iot:Connect', 'client/c1')).toBe(true);
    expect(allowed(set, bare, 'iot:Subscribe', 'topicfilter/a')).toBe(true);
    expect(allowed(set, bare, 'iot:Publish', 'topic/a')).toBe(false);
    expect(allowed(set, bare, 'iot:RetainPublish', 'topic/a')).toBe(false);
  });

  it('NotResource applies to every resource but those named; other types exclude nothing', () => {
    const set = one({
      Effect: 'Deny',
      Action: 'iot:Publish',
      NotResource: ['topic/${iot:ClientId}/*', 'topicfilter/x', 'arn:aws:iot:us-east-1:1:thing/t'],
    });
    expect(show(evaluate(set, bare, 'iot:Publish', 'topic/other'))).toBe('deny p@1#0');
    expect(show(evaluate(set, bare, 'iot:Publish', 'topic/c1/x'))).toBe('implicit');
    expect(show(evaluate(set, bare, 'iot:Subscribe', 'topicfilter/other'))).toBe('implicit');
  });

  it('an exclusion whose variable does not resolve keeps a NotResource statement from applying', () => {
    const set = compilePolicies(
      [
        { Effect: 'Allow', Action: '*', Resource: '*' },
        { Effect: 'Deny', Action: 'iot:Publish', NotResource: 'topic/${iot:Connection.Thing.ThingName}/*' },
      ].map((Statement, i) => ({
        name: `p${i}`,
        version: '1',
        document: parsePolicyDocument({ Version: '2012-10-17', Statement }),
      })),
    );
    expect(show(evaluate(set, bare, 'iot:Publish', 'topic/t1/x'))).toBe('allow p0@1#0');
    expect(show(evaluate(set, thing, 'iot:Publish', 'topic/t1/x'))).toBe('allow p0@1#0');
    expect(show(evaluate(set, thing, 'iot:Publish', 'topic/t2/x'))).toBe('deny p1@1#0');
  });

  it('wildcards in an ARN resource type match against the whole resource', () => {
    const set = one({ Effect: 'Allow', Action: 'iot:*', Resource: 'arn:aws:iot:*:*:t*/a' });
    expect(allowed(set, bare, 'iot:Publish', 'topic/a')).toBe(true);
    expect(allowed(set, bare, 'iot:Subscribe', 'topicfilter/a')).toBe(true);
    expect(allowed(set, bare, 'iot:Connect', 'client/a')).toBe(false);
    expect(allowed(set, bare, 'iot:Publish', 'topic/b')).toBe(false);
  });

  it("a thing, rolealias or other service's resource never names a client or topic", () => {
    const set = one({
      Effect: 'Allow',
      Action: '*',
      Resource: ['arn:aws:iot:us-east-1:1:thing/*', 'arn:aws:iot:us-east-1:1:rolealias/*', 'arn:aws:s3:::*'],
    });
    for (const [action, resource] of [
      ['iot:Connect', 'client/thing'],
      ['iot:Publish', 'topic/thing/x'],
      ['iot:Subscribe', 'topicfilter/rolealias/x'],
    ] as const) {
      expect(allowed(set, bare, action, resource)).toBe(false);
    }
  });

  it("reads ${…} as plain text in a '2008-10-17' document or one without a Version, as IAM does", () => {
    for (const Version of ['2008-10-17', undefined]) {
      const document = parsePolicyDocument({
        ...(Version === undefined ? {} : { Version }),
        Statement: { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:ClientId}' },
      });
      const set = compilePolicies([{ name: 'p', version: '1', document }]);
      expect(allowed(set, { clientId: 'c1' }, 'iot:Connect', 'client/c1')).toBe(false);
      expect(allowed(set, { clientId: '${iot:ClientId}' }, 'iot:Connect', 'client/${iot:ClientId}')).toBe(
        true,
      );
    }
  });

  it('substitutes certificate values as AWS IoT does: no wildcard characters, at most 1,024 characters', () => {
    const set = one({
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: 'topic/cn/${iot:Certificate.Subject.CommonName.1}',
    });
    const withNames = (...names: string[]): PolicyContext => ({
      clientId: 'c1',
      certificate: { 'Subject.CommonName': names },
    });
    expect(set.needsCertificate).toBe(true);
    expect(one({ Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/x' }).needsCertificate).toBe(false);
    expect(allowed(set, withNames('first', 'second'), 'iot:Publish', 'topic/cn/second')).toBe(true);
    expect(allowed(set, withNames('first'), 'iot:Publish', 'topic/cn/')).toBe(false);
    expect(allowed(set, withNames('first', 'se*'), 'iot:Publish', 'topic/cn/se*')).toBe(false);
    const long = 'x'.repeat(1025);
    expect(allowed(set, withNames('first', long), 'iot:Publish', `topic/cn/${long}`)).toBe(false);
  });

  it('lists the certificate keys that hold values (iot:Certificate.AvailableKeys)', () => {
    const set = publishIf({
      'ForAnyValue:StringEquals': { 'iot:Certificate.AvailableKeys': 'iot:Certificate.Subject.Organization' },
    });
    expect(set.needsCertificate).toBe(true);
    const context = (fields: Record<string, string[]>): PolicyContext => ({
      clientId: 'c',
      certificate: fields,
    });
    expect(allowed(set, context({ 'Subject.Organization': ['Acme'] }), 'iot:Publish', 'topic/t')).toBe(true);
    expect(allowed(set, context({ 'Subject.CommonName': ['d'] }), 'iot:Publish', 'topic/t')).toBe(false);
  });

  it('a Condition on an explicit Deny denies only where it holds', () => {
    const set = compilePolicies([
      {
        name: 'p',
        version: '1',
        document: parsePolicyDocument({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/*' },
            {
              Effect: 'Deny',
              Action: 'iot:Publish',
              Resource: 'topic/*',
              Condition: { NotIpAddress: { 'aws:SourceIp': '10.0.0.0/8' } },
            },
          ],
        }),
      },
    ]);
    expect(show(evaluate(set, { clientId: 'a', sourceIp: '10.0.0.1' }, 'iot:Publish', 'topic/x'))).toBe(
      'allow p@1#0',
    );
    expect(show(evaluate(set, { clientId: 'a', sourceIp: '11.0.0.1' }, 'iot:Publish', 'topic/x'))).toBe(
      'deny p@1#1',
    );
  });
});

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

  it.each<[string, unknown, string, string]>([
    [
      'Condition',
      doc({ ...ok, Condition: { Bool: { 'iot:Connection.Thing.IsAttached': ['true'] } } }),
      'policyDocument.Statement.0.Condition',
      "'Condition' is not supported",
    ],
    [
      'NotAction',
      doc(ok, { Effect: 'Deny', NotAction: 'iot:Connect', Resource: '*' }),
      'policyDocument.Statement.1.NotAction',
      "'NotAction' is not supported",
    ],
    [
      'NotResource',
      doc({ ...ok, NotResource: 'topic/b' }),
      'policyDocument.Statement.0.NotResource',
      "'NotResource' is not supported",
    ],
    [
      'Principal',
      doc({ ...ok, Principal: '*' }),
      'policyDocument.Statement.0.Principal',
      "'Principal' is not supported",
    ],
    [
      'an unknown statement key',
      doc({ ...ok, Priority: 1 }),
      'policyDocument.Statement.0.Priority',
      'allowed keys are Sid, Effect, Action, Resource',
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
    ['a missing Version', { Statement: [ok] }, 'policyDocument.Version', "use '2012-10-17'"],
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
      'an unknown action as a string',
      doc({ ...ok, Action: 'iot:Pubish' }),
      'policyDocument.Statement.0.Action',
      "'iot:Pubish' names no AWS IoT action",
    ],
    [
      'an action of another service',
      doc({ ...ok, Action: 's3:GetObject' }),
      'policyDocument.Statement.0.Action',
      'names no AWS IoT action',
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
      'Resource is required',
    ],
    [
      'a Resource that is a number',
      doc({ ...ok, Resource: ['topic/a', 7] }),
      'policyDocument.Statement.0.Resource.1',
      'non-empty string, not a number',
    ],
    [
      'an unknown variable',
      doc({ ...ok, Resource: ['topic/${iot:Certificate.Subject.CommonName}'] }),
      'policyDocument.Statement.0.Resource.0',
      'unknown policy variable ${iot:Certificate.Subject.CommonName}',
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
      'variables in a 2008-10-17 document',
      { ...doc({ ...ok, Resource: 'client/${iot:ClientId}' }), Version: '2008-10-17' },
      'policyDocument.Statement.0.Resource',
      "need Version '2012-10-17'",
    ],
    [
      'a bad resource prefix',
      doc({ ...ok, Resource: ['thing/x'] }),
      'policyDocument.Statement.0.Resource.0',
      'client/CLIENT_ID, topic/TOPIC, topicfilter/TOPIC_FILTER',
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
      'an ARN of another service',
      doc({ ...ok, Resource: 'arn:aws:s3:::bucket/x' }),
      'policyDocument.Statement.0.Resource',
      "ARN service 's3' is not iot",
    ],
    [
      'a truncated ARN',
      doc({ ...ok, Resource: 'arn:aws:iot:topic/x' }),
      'policyDocument.Statement.0.Resource',
      'is not an AWS IoT ARN',
    ],
    [
      'an ARN of a thing',
      doc({ ...ok, Resource: 'arn:aws:iot:us-east-1:1:thing/x' }),
      'policyDocument.Statement.0.Resource',
      'is not a resource iotdr understands',
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
          Statement: [{ Effect: 'Permit', Action: 'iot:Pubish', Resource: 'thing/x', Condition: {} }],
        },
        'body.document',
      ),
    );
    expect(err.issues.map((i) => i.path)).toEqual([
      'body.document.Statement.0.Condition',
      'body.document.Statement.0.Effect',
      'body.document.Statement.0.Action',
      'body.document.Statement.0.Resource',
    ]);
  });
});

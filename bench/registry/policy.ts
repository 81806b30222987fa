// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
/**
 * Policy evaluation throughput: the broker evaluates on every publish and delivery, so this is
 * the number that bounds messages per second per core. Run with `npx tsx bench/registry/policy.ts`.
 */
import { pathToFileURL } from 'node:url';
import {
  compilePolicies,
  evaluate,
  type IotAction,
  type PolicyContext,
  parsePolicyDocument,
} from '../../src/registry/policy/index.js';

export interface BenchResult {
  name: string;
  opsPerSec: number;
}

/** A realistic certificate: a device policy, a fleet guard rail and a shared-topics policy. */
function realisticSet() {
  const device = parsePolicyDocument({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: 'arn:aws:iot:eu-west-1:123456789012:client/${iot:ClientId}',
      },
      {
        Effect: 'Allow',
        Action: ['iot:Publish', 'iot:Receive'],
        Resource: [
          'arn:aws:iot:eu-west-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*',
          'arn:aws:iot:eu-west-1:123456789012:topic/devices/${iot:Connection.Thing.ThingName}/*',
        ],
      },
      {
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: [
          'topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*',
          'topicfilter/devices/${iot:Connection.Thing.ThingName}/*',
        ],
      },
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource:
          'topic/sites/${iot:Connection.Thing.Attributes[site]}/${iot:Connection.Thing.ThingTypeName}/*',
      },
    ],
  });
  const guard = parsePolicyDocument({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Deny',
        Action: 'iot:*',
        Resource: ['topic/devices/*/admin/*', 'topicfilter/devices/*/admin/*'],
      },
      { Effect: 'Deny', Action: 'iot:Connect', Resource: 'client/test-*' },
      { Effect: 'Deny', Action: 'iot:Publish', Resource: 'topic/$aws/things/*/shadow/delete' },
    ],
  });
  const shared = parsePolicyDocument({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: 'topicfilter/broadcast/*' },
      { Effect: 'Allow', Action: ['iot:Receive'], Resource: 'topic/broadcast/*' },
      { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/telemetry/${iot:ClientId}/??' },
    ],
  });
  return compilePolicies([
    { name: 'device', version: '7', document: device },
    { name: 'guard', version: '2', document: guard },
    { name: 'shared', version: '1', document: shared },
  ]);
}

interface Mix {
  name: string;
  action: IotAction;
  resources: string[];
  expect: 'allow' | 'explicit' | 'implicit';
}

const MIXES: Mix[] = [
  {
    name: 'allow via ThingName variable',
    action: 'iot:Publish',
    resources: ['topic/devices/pump-0042/telemetry', 'topic/$aws/things/pump-0042/shadow/update'],
    expect: 'allow',
  },
  {
    name: 'allow via attribute + type',
    action: 'iot:Publish',
    resources: ['topic/sites/berlin/pump/flow', 'topic/sites/berlin/pump/pressure/1'],
    expect: 'allow',
  },
  {
    name: 'explicit deny',
    action: 'iot:Publish',
    resources: ['topic/devices/pump-0042/admin/reset', 'topic/$aws/things/pump-0042/shadow/delete'],
    expect: 'explicit',
  },
  {
    name: 'implicit deny',
    action: 'iot:Publish',
    resources: ['topic/devices/pump-0043/telemetry', 'topic/sites/paris/pump/flow'],
    expect: 'implicit',
  },
  {
    name: 'subscribe allow',
    action: 'iot:Subscribe',
    resources: ['topicfilter/devices/pump-0042/#', 'topicfilter/broadcast/+'],
    expect: 'allow',
  },
];

const CONTEXT: PolicyContext = {
  clientId: 'pump-0042',
  thingName: 'pump-0042',
  thingTypeName: 'pump',
  thingAttributes: { site: 'berlin', model: 'x2' },
};

const BATCH = 10_000;

function run(set: ReturnType<typeof realisticSet>, mix: Mix, durationMs: number): number {
  // Check the mix means what it says before timing it.
  for (const resource of mix.resources) {
    const d = evaluate(set, CONTEXT, mix.action, resource);
    const got = d.effect === 'allow' ? 'allow' : d.reason;
    if (got !== mix.expect) throw new Error(`${mix.name}: ${resource} gave ${got}, expected ${mix.expect}`);
  }
  const resources = mix.resources;
  let sink = 0;
  let ops = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(durationMs) * 1_000_000n;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < BATCH; i++) {
      const d = evaluate(set, CONTEXT, mix.action, resources[i % resources.length] as string);
      if (d.effect === 'allow') sink++;
    }
    ops += BATCH;
    now = process.hrtime.bigint();
  }
  if (sink < 0) throw new Error('unreachable');
  return ops / (Number(now - start) / 1e9);
}

/** Evaluations per second for a few mixes; about 1.2 s per mix including warm-up. */
export async function benchPolicy(durationMs = 1000): Promise<BenchResult[]> {
  const set = realisticSet();
  for (const mix of MIXES) run(set, mix, 50); // warm up every path before measuring any
  const results: BenchResult[] = [];
  for (const mix of MIXES) {
    run(set, mix, durationMs / 5);
    results.push({ name: `policy evaluate: ${mix.name}`, opsPerSec: Math.round(run(set, mix, durationMs)) });
    await new Promise((resolve) => setImmediate(resolve));
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await benchPolicy();
  const width = Math.max(...results.map((r) => r.name.length));
  console.log(`${'benchmark'.padEnd(width)}  ${'evaluations/s'.padStart(14)}`);
  for (const r of results)
    console.log(`${r.name.padEnd(width)}  ${r.opsPerSec.toLocaleString('en-US').padStart(14)}`);
}

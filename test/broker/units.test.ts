import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PacketSizeGuard } from '../../src/broker/guard.js';
import { DEVICE_POLICY_TEMPLATE, FAILOVER_NOTICE_TOPIC, messageIdOf } from '../../src/broker/index.js';
import { ConnectionRateLimiter } from '../../src/broker/rate-limit.js';
import { topicProblem } from '../../src/broker/session.js';
import { compilePolicies, evaluate, parsePolicyDocument } from '../../src/registry/index.js';

/** Feeds bytes through a guard, one chunk per element; returns what passed and the violation, if any. */
async function guarded(limit: number, chunks: number[][]): Promise<{ passed: number[]; violation?: string }> {
  const socket = new PassThrough();
  let violation: string | undefined;
  const guard = new PacketSizeGuard(socket, limit, (reason) => {
    violation = reason;
  });
  const passed: number[] = [];
  guard.on('data', (chunk: Buffer) => passed.push(...chunk));
  guard.on('error', () => undefined);
  for (const chunk of chunks) {
    if (guard.destroyed) break;
    socket.write(Buffer.from(chunk));
    await new Promise((r) => setImmediate(r));
  }
  return violation === undefined ? { passed } : { passed, violation };
}

describe('PacketSizeGuard', () => {
  it('passes packets up to the limit unchanged, whatever the chunking', async () => {
    const packet = [0x30, 0x05, 0x00, 0x01, 0x61, 0x68, 0x69];
    const pingreq = [0xc0, 0x00];
    const bytes = [...packet, ...pingreq, ...packet];
    expect(await guarded(5, [bytes])).toEqual({ passed: bytes });
    expect(
      await guarded(
        5,
        bytes.map((b) => [b]),
      ),
    ).toEqual({ passed: bytes });
  });

  it('refuses a packet one byte over the limit as soon as its length is known', async () => {
    const header = [0x30, 0x06];
    const result = await guarded(5, [[0xc0, 0x00], header, [0, 1, 2, 3, 4, 5]]);
    expect(result.violation).toBe('packet of 6 bytes exceeds the limit of 5');
    expect(result.passed).toEqual([0xc0, 0x00]);
  });

  it('reads multi-byte remaining lengths split across chunks', async () => {
    // 321 = 0xC1 0x02
    const result = await guarded(320, [[0x30, 0xc1], [0x02]]);
    expect(result.violation).toBe('packet of 321 bytes exceeds the limit of 320');
  });

  it('refuses a remaining length longer than four bytes', async () => {
    const result = await guarded(1 << 30, [[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]]);
    expect(result.violation).toBe('malformed remaining length');
  });
});

describe('ConnectionRateLimiter', () => {
  it('allows a burst, then the refill rate, per address', () => {
    let now = 1_000_000;
    const limiter = new ConnectionRateLimiter(2, 3, { now: () => now });
    const takes = (address: string, n: number) => Array.from({ length: n }, () => limiter.take(address));
    expect(takes('a', 4)).toEqual([true, true, true, false]);
    expect(takes('b', 1)).toEqual([true]);
    now += 500; // one token back
    expect(takes('a', 2)).toEqual([true, false]);
    now += 60_000; // full again, never more than the burst
    expect(takes('a', 4)).toEqual([true, true, true, false]);
  });
});

describe('topic limits and message ids', () => {
  it('measures topics in UTF-8 bytes and levels', () => {
    const limits = { maxTopicLength: 8, maxTopicLevels: 3 };
    expect(topicProblem('a/b/c', limits)).toBeUndefined();
    expect(topicProblem('a/b/c/d', limits)?.reason).toBe('topic_too_deep');
    expect(topicProblem('ééééé', limits)?.reason).toBe('topic_too_long');
    expect(topicProblem('abcdefgh', limits)).toBeUndefined();
  });

  it('takes a top-level string messageId of 1..128 characters from a JSON object', () => {
    expect(messageIdOf(Buffer.from(' {"messageId":"m-1","x":{"messageId":"no"}}'))).toBe('m-1');
    expect(messageIdOf(Buffer.from('{"messageId":""}'))).toBeUndefined();
    expect(messageIdOf(Buffer.from(`{"messageId":"${'x'.repeat(129)}"}`))).toBeUndefined();
    expect(messageIdOf(Buffer.from('{"messageId":42}'))).toBeUndefined();
    expect(messageIdOf(Buffer.from('{"x":{"messageId":"nested"}}'))).toBeUndefined();
    expect(messageIdOf(Buffer.from('["messageId"]'))).toBeUndefined();
    expect(messageIdOf(Buffer.from('{not json'))).toBeUndefined();
    expect(messageIdOf(Buffer.from([0xff, 0x00]))).toBeUndefined();
  });
});

describe('DEVICE_POLICY_TEMPLATE', () => {
  const set = compilePolicies([
    { name: 'device', version: '1', document: parsePolicyDocument(DEVICE_POLICY_TEMPLATE(), 'doc') },
  ]);
  const ctx = { clientId: 'dev-1', thingName: 'dev-1' };
  const allowed = (action: Parameters<typeof evaluate>[2], resource: string, context = ctx) =>
    evaluate(set, context, action, resource).effect === 'allow';

  it('lets a thing connect as itself and use its own topics only', () => {
    expect(allowed('iot:Connect', 'client/dev-1')).toBe(true);
    expect(allowed('iot:Connect', 'client/dev-2')).toBe(false);
    expect(allowed('iot:Connect', 'client/dev-1', { clientId: 'dev-1' } as typeof ctx)).toBe(false);
    expect(allowed('iot:Publish', 'topic/devices/dev-1/telemetry')).toBe(true);
    expect(allowed('iot:Publish', 'topic/devices/dev-2/telemetry')).toBe(false);
    expect(allowed('iot:Subscribe', 'topicfilter/devices/dev-1/#')).toBe(true);
    expect(allowed('iot:Publish', 'topic/$iotdr/things/dev-1/shadow/update')).toBe(true);
    expect(allowed('iot:Receive', 'topic/$iotdr/things/dev-1/shadow/update/delta')).toBe(true);
    expect(allowed('iot:Subscribe', 'topicfilter/$iotdr/things/dev-1/shadow/+/accepted')).toBe(true);
    expect(allowed('iot:Publish', 'topic/$iotdr/things/dev-2/shadow/update')).toBe(false);
  });

  it('lets it publish its shadow requests, but not the replies the platform gives', () => {
    for (const op of ['get', 'update', 'delete'])
      expect(allowed('iot:Publish', `topic/$iotdr/things/dev-1/shadow/${op}`), op).toBe(true);
    for (const reply of [
      'update/accepted',
      'update/rejected',
      'update/delta',
      'update/documents',
      'get/accepted',
      'get/rejected',
      'delete/accepted',
      'delete/rejected',
    ]) {
      expect(allowed('iot:Publish', `topic/$iotdr/things/dev-1/shadow/${reply}`), reply).toBe(false);
      expect(allowed('iot:Receive', `topic/$iotdr/things/dev-1/shadow/${reply}`), reply).toBe(true);
    }
    expect(allowed('iot:Subscribe', 'topicfilter/$iotdr/things/dev-1/shadow/update/delta')).toBe(true);
  });

  it('lets it receive the failover notice and its commands, but not publish them', () => {
    expect(allowed('iot:Subscribe', `topicfilter/${FAILOVER_NOTICE_TOPIC}`)).toBe(true);
    expect(allowed('iot:Receive', `topic/${FAILOVER_NOTICE_TOPIC}`)).toBe(true);
    expect(allowed('iot:Publish', `topic/${FAILOVER_NOTICE_TOPIC}`)).toBe(false);
    expect(allowed('iot:Subscribe', 'topicfilter/$iotdr/things/dev-1/commands')).toBe(true);
    expect(allowed('iot:Receive', 'topic/$iotdr/things/dev-1/commands')).toBe(true);
    expect(allowed('iot:Publish', 'topic/$iotdr/things/dev-1/commands')).toBe(false);
    // Commands come on one exact topic: no wildcard filter over them is needed, none is allowed.
    expect(allowed('iot:Subscribe', 'topicfilter/$iotdr/things/dev-1/commands/+')).toBe(false);
    expect(allowed('iot:Subscribe', 'topicfilter/$iotdr/things/+/commands')).toBe(false);
    expect(allowed('iot:Publish', 'topic/$iotdr/things/dev-1/commands/0193/reply')).toBe(true);
    expect(allowed('iot:RetainPublish', 'topic/devices/dev-1/state')).toBe(false);
  });
});

import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { HandshakeGate } from '../../src/broker/handshakes.js';

describe('HandshakeGate', () => {
  it('runs at most the limit at once, starts the rest in arrival order, lets exempt ones skip the line', () => {
    let now = 0;
    const gate = new HandshakeGate({ limit: 2, maxWaiting: 3, maxWaitMs: 1000, now: () => now });
    const started: string[] = [];
    const admit = (name: string, exempt = false, socket = new Socket()) =>
      gate.admit(socket, () => started.push(name), exempt);
    expect([admit('a'), admit('b'), admit('c'), admit('d')]).toEqual([true, true, true, true]);
    expect(started).toEqual(['a', 'b']);
    expect(gate.waiting).toBe(2);
    // The region's own probe does not wait behind the storm.
    expect(admit('probe', true)).toBe(true);
    expect(started).toEqual(['a', 'b', 'probe']);
    expect(gate.running).toBe(3);
    // The line is bounded: one more fits, the next is refused.
    expect(admit('e')).toBe(true);
    expect(admit('f')).toBe(false);
    gate.done(); // probe
    expect(started).toEqual(['a', 'b', 'probe']);
    gate.done(); // a
    expect(started).toEqual(['a', 'b', 'probe', 'c']);
    // A connection closed while waiting is skipped; one that waited past maxWaitMs is closed.
    const gone = new Socket();
    gone.destroy();
    admit('gone', false, gone);
    now = 500;
    gate.done(); // b
    expect(started.at(-1)).toBe('d');
    now = 2000;
    gate.done(); // c
    gate.done(); // d
    expect(started).toEqual(['a', 'b', 'probe', 'c', 'd']);
    expect(gate.running).toBe(0);
    expect(gate.waiting).toBe(0);
    expect(admit('g')).toBe(true);
    expect(started.at(-1)).toBe('g');
  });
});

import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { HandshakeGate } from '../../src/broker/handshakes.js';

describe('HandshakeGate', () => {
  it('runs at most the limit at once, starts the newest waiting first, lets exempt ones skip the line', () => {
    let now = 0;
    const gate = new HandshakeGate({ limit: 2, maxWaiting: 3, maxWaitMs: 1000, now: () => now });
    const started: string[] = [];
    const sockets = new Map<string, Socket>();
    const admit = (name: string, exempt = false) => {
      const socket = new Socket();
      sockets.set(name, socket);
      return gate.admit(socket, () => started.push(name), exempt);
    };
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
    gate.done(); // probe: still two running
    expect(started).toEqual(['a', 'b', 'probe']);
    // The newest first: e, then d (c waits longest).
    gate.done();
    expect(started.at(-1)).toBe('e');
    // A connection closed while waiting is skipped.
    sockets.get('d')?.destroy();
    gate.done();
    expect(started.at(-1)).toBe('c');
    // One that waited past maxWaitMs is closed when its turn comes, not started.
    expect(admit('g')).toBe(true);
    now = 2000;
    gate.done();
    gate.done();
    expect(started).toEqual(['a', 'b', 'probe', 'e', 'c']);
    expect(sockets.get('g')?.destroyed).toBe(true);
    expect([gate.running, gate.waiting]).toEqual([0, 0]);
    // A full line of connections that are gone makes room for a new one.
    for (const name of ['h', 'i', 'j', 'k', 'l']) admit(name);
    for (const name of ['j', 'k', 'l']) sockets.get(name)?.destroy();
    expect(admit('m')).toBe(true);
  });

  it('adapts the limit to the event loop: a quarter off when late with its own work, an eighth more when on time and full', () => {
    const gate = new HandshakeGate({
      limit: 8,
      maxLimit: 12,
      maxWaiting: 100,
      maxWaitMs: 1000,
      now: () => 0,
    });
    try {
      const started: number[] = [];
      for (let i = 0; i < 20; i++) gate.admit(new Socket(), () => started.push(i), false);
      expect(started.length).toBe(8);
      // On time with every slot in use: an eighth more (at least one) each sample, up to maxLimit;
      // each new slot starts one.
      gate.adapt(5, 1);
      expect(gate.limit).toBe(9);
      gate.adapt(5, 1);
      gate.adapt(5, 1);
      gate.adapt(5, 1);
      expect(gate.limit).toBe(12);
      gate.adapt(5, 1);
      expect(gate.limit).toBe(12);
      expect(started.length).toBe(12);
      // Late but mostly idle: other processes held the CPU, not the handshakes; the limit stays.
      gate.adapt(200, 0.3);
      expect(gate.limit).toBe(12);
      // Late and busy with its own work: a quarter off, down to the starting number; running ones
      // finish, nothing new starts.
      gate.adapt(200, 0.95);
      expect(gate.limit).toBe(9);
      gate.adapt(200, 0.95);
      gate.adapt(200, 0.95);
      expect(gate.limit).toBe(8);
      for (let i = 0; i < 4; i++) gate.done();
      expect(started.length).toBe(12);
      gate.done();
      expect(started.length).toBe(13);
    } finally {
      gate.close();
    }
  });
});

import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { HandshakeGate } from '../../src/broker/handshakes.js';

describe('HandshakeGate', () => {
  it('runs at most the limit at once, serves the line in arrival order, lets exempt ones skip it', () => {
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
    // In arrival order: c, then d is skipped (closed while waiting), then e.
    gate.done();
    expect(started.at(-1)).toBe('c');
    sockets.get('d')?.destroy();
    gate.done();
    expect(started.at(-1)).toBe('e');
    expect(gate.waiting).toBe(0);
    // One that waited past maxWaitMs is closed when its turn comes, not started.
    expect(admit('g')).toBe(true);
    now = 2000;
    gate.done();
    gate.done();
    expect(started).toEqual(['a', 'b', 'probe', 'c', 'e']);
    expect(sockets.get('g')?.destroyed).toBe(true);
    expect([gate.running, gate.waiting]).toEqual([0, 0]);
    // A full line of connections that are gone makes room for a new one.
    for (const name of ['h', 'i', 'j', 'k', 'l']) admit(name);
    for (const name of ['j', 'k', 'l']) sockets.get(name)?.destroy();
    expect(admit('m')).toBe(true);
  });

  it('admits only what it can serve in time, at the rate it lately finished handshakes', () => {
    let now = 0;
    // 4 slots; a line of 4 s at most: a newcomer may face up to 3 s.
    const gate = new HandshakeGate({ limit: 4, maxWaiting: 10_000, maxWaitMs: 4000, now: () => now });
    const started: number[] = [];
    const admitted: number[] = [];
    let n = 0;
    const admit = () => {
      const i = n++;
      const ok = gate.admit(new Socket(), () => started.push(i), false);
      if (ok) admitted.push(i);
      return ok;
    };
    // Before any handshake finished: the prior rate, 10 a second per slot (40/s), 25 ms apart.
    expect(gate.rate).toBe(40);
    for (let i = 0; i < 200; i++) admit();
    // 4 run, and 3 s at 25 ms each is 120 in line: the 121st would wait (120 + 1) × 25 > 3,000 ms.
    expect(admitted.length).toBe(4 + 120);
    expect(gate.waiting).toBe(120);
    expect(gate.expectedWaitMs).toBe(121 * 25);
    // The broker finishes one every 5 ms (200 a second): the average gap falls towards it, and
    // more fit in the same 3 s, while three arrive for each one served.
    for (let i = 0; i < 400; i++) {
      now += 5;
      gate.done();
      for (let j = 0; j < 3; j++) admit();
    }
    expect(gate.rate).toBeGreaterThan(190);
    expect(gate.waiting).toBeGreaterThan(500);
    expect((gate.waiting * 1000) / gate.rate).toBeLessThanOrEqual(3000);
    // Served in arrival order, none skipped.
    expect(started).toEqual(admitted.slice(0, started.length));
  });

  it('admits no more than the sessions left leave room for', () => {
    let room = 5;
    const gate = new HandshakeGate({
      limit: 2,
      maxWaiting: 100,
      maxWaitMs: 60_000,
      now: () => 0,
      room: () => room,
    });
    const results = Array.from({ length: 8 }, () => gate.admit(new Socket(), () => {}, false));
    // 2 running + 3 waiting fill the room of 5.
    expect(results).toEqual([true, true, true, true, true, false, false, false]);
    room = 6;
    expect(gate.admit(new Socket(), () => {}, false)).toBe(true);
    // The region's own probe is not counted against it.
    expect(gate.admit(new Socket(), () => {}, true)).toBe(true);
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

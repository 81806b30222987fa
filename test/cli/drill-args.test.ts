/**
 * `iotdr drill`'s fault, control-plane and event-bus arguments, refused before anything starts: a
 * fault joined with `+` to control-leader-crash or nats-node-crash, never two region faults nor one
 * of those alone; control-leader-crash only with control nodes to take over, nats-node-crash only
 * with a region's events on three NATS servers.
 */
import { describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

async function drill(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: process.cwd() };
  const code = await main(['drill', ...args], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('iotdr drill arguments', () => {
  it.each([
    ['control-leader-crash'],
    ['region-crash+broker-crash'],
    ['region-crash+control-leader-crash+control-leader-crash'],
    ['region-crash+nothing'],
    ['nats-node-crash'],
    ['region-crash+nats-node-crash+nats-node-crash'],
  ])('refuses --fault %s as a usage error', async (fault) => {
    const { code, err } = await drill('--fault', fault);
    expect(code).toBe(2);
    expect(err).toContain('alone or joined with + to control-leader-crash or nats-node-crash');
  });

  it.each([
    [['--events', 'kafka'], '--events: jetstream'],
    [['--nats-servers', '3'], '--nats-servers: only with --events jetstream'],
    [['--events', 'jetstream', '--nats-servers', '2'], '--nats-servers: 1 or 3'],
  ])('refuses %j', async (args, message) => {
    const { code, err } = await drill(...args);
    expect(code).toBe(2);
    expect(err).toContain(message);
  });

  it('refuses nats-node-crash without three NATS servers, before starting anything', async () => {
    const { code, out, err } = await drill(
      '--fault',
      'nats-node-crash+region-crash',
      '--events',
      'jetstream',
      '--devices',
      '1',
    );
    expect(code).toBe(1);
    expect(out).toContain('nats-node-crash+region-crash');
    expect(out).toContain('events.engine: jetstream, 1 NATS server per region');
    expect(err).toContain('nats-node-crash needs us-west');
    expect(err).toContain('IOTDR_DRILL_CONFIG');
    expect(out).not.toContain('starting');
  });

  it.each([['0'], ['6'], ['two']])('refuses --control-nodes %s', async (n) => {
    const { code, err } = await drill('--control-nodes', n);
    expect(code).toBe(2);
    expect(err).toContain('--control-nodes: an integer from 1 to 5');
  });

  it('refuses control-leader-crash without control nodes, before starting anything', async () => {
    const { code, out, err } = await drill('--fault', 'control-leader-crash+region-crash', '--devices', '1');
    expect(code).toBe(1);
    expect(out).toContain('control-leader-crash+region-crash');
    expect(err).toContain('control-leader-crash needs two control nodes or more');
    expect(err).toContain('IOTDR_DRILL_CONFIG');
    expect(out).not.toContain('starting');
  });
});

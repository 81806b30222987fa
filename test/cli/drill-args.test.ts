/**
 * `iotdr drill`'s fault and control-plane arguments, refused before anything starts: a fault
 * joined with `+` to control-leader-crash, never two region faults nor the control fault alone, and
 * control-leader-crash only with control nodes to take over.
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
  ])('refuses --fault %s as a usage error', async (fault) => {
    const { code, err } = await drill('--fault', fault);
    expect(code).toBe(2);
    expect(err).toContain('alone or joined to control-leader-crash with +');
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

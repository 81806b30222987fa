import { describe, expect, it } from 'vitest';
import { IotdrError, waitUntil } from '../../src/common/index.js';

describe('waitUntil', () => {
  it('returns once the check holds, taking a throw for "not yet"', async () => {
    let n = 0;
    await waitUntil(
      () => {
        n++;
        if (n < 3) throw new Error('not listening yet');
        return n >= 4;
      },
      { timeoutMs: 5000, what: 'the fourth check', intervalMs: 1 },
    );
    expect(n).toBe(4);
  });

  it('times out saying how long, what for, the status and the last error', async () => {
    const error = await waitUntil(
      () => {
        throw new Error('connection refused');
      },
      { timeoutMs: 30, what: 'the API', intervalMs: 5, status: () => '2 of 3 up' },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IotdrError);
    expect((error as IotdrError).code).toBe('IOTDR_WAIT_TIMEOUT');
    expect((error as Error).message).toBe(
      'timed out after 30 ms waiting for the API (2 of 3 up); last error: connection refused',
    );
  });

  it('ends at once on a fatal error or an abort, and shows the status while it waits', async () => {
    const verdict = new Error('verdict');
    await expect(
      waitUntil(
        () => {
          throw verdict;
        },
        { timeoutMs: 5000, what: 'x', fatal: (e) => e === verdict },
      ),
    ).rejects.toBe(verdict);

    const abort = new AbortController();
    const shown: string[] = [];
    const waiting = waitUntil(() => false, {
      timeoutMs: 5000,
      what: 'x',
      intervalMs: 5,
      status: () => 'waiting',
      show: (line) => shown.push(line),
      showEveryMs: 10,
      signal: abort.signal,
      abortError: () => new Error('interrupted'),
    });
    setTimeout(() => abort.abort(), 60);
    await expect(waiting).rejects.toThrow('interrupted');
    expect(shown.length).toBeGreaterThan(0);
    expect(shown.every((line) => line === 'waiting')).toBe(true);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSessionLimit } from '../../src/broker/capacity.js';
import {
  DEFAULT_BYTES_PER_SESSION,
  DEFAULT_HEAP_BYTES_PER_SESSION,
  DEFAULT_LIMITS,
  FALLBACK_OPEN_FILES,
  FILES_RESERVE,
  type MachineFacts,
  machineCapacity,
  parseOpenFileLimits,
  readMachineFacts,
  sessionCapacity,
} from '../../src/broker/index.js';
import { createLogger, IotdrError, ValidationError } from '../../src/common/index.js';
import { LogSink, startBroker, startRegistry, type TestRegistry } from './support.js';

const GiB = 2 ** 30;
const KiB = 1024;
/** Sockets the default handshake line holds beside the sessions: handshakes in flight. */
const LINE = DEFAULT_LIMITS.maxHandshakesInFlight;

/** This machine as the brief describes it: 20,000 open files, 24 GiB, Node's 4 GiB heap. */
const facts = {
  openFiles: 20_000,
  memoryBytes: 24 * GiB,
  bytesPerSession: 128 * KiB,
  heapLimitBytes: 4 * GiB,
  heapBytesPerSession: 48 * KiB,
  handshakeSockets: 128,
};

/** /proc/self/limits as Linux writes it (proc(5)), with the open-file line given. */
function limitsText(openFiles: string): string {
  return [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    'Max stack size            8388608              unlimited            bytes     ',
    'Max processes             96367                96367                processes ',
    openFiles,
    'Max locked memory         8388608              8388608              bytes     ',
    'Max realtime timeout      unlimited            unlimited            us        ',
    '',
  ].join('\n');
}

describe('sessionCapacity', () => {
  it('is bound by open files on a machine with the usual limit and plenty of memory', () => {
    const capacity = sessionCapacity(facts);
    expect(capacity).toMatchObject({
      maxConnections: 20_000 - FILES_RESERVE - 128,
      boundBy: 'files',
      files: 20_000,
      memoryBytes: 24 * GiB,
      bytesPerSession: 128 * KiB,
    });
    expect(capacity.maxConnections).toBe(18_848);
    expect(capacity.memoryBound).toBe(98_304); // half of 24 GiB ÷ 128 KiB
    expect(capacity.heapBound).toBe(43_690); // half of 4 GiB ÷ 48 KiB
  });

  it('is bound by memory when the files are plenty and the memory small', () => {
    const capacity = sessionCapacity({ ...facts, openFiles: 1_048_576, memoryBytes: 2 * GiB });
    expect(capacity).toMatchObject({ maxConnections: 8_192, boundBy: 'memory' });
    expect(capacity.filesBound).toBe(1_048_576 - FILES_RESERVE - 128);
  });

  it("is bound by V8's heap on a big machine with the default heap limit", () => {
    const capacity = sessionCapacity({
      ...facts,
      openFiles: Number.POSITIVE_INFINITY,
      memoryBytes: 256 * GiB,
    });
    expect(capacity).toMatchObject({ maxConnections: 43_690, boundBy: 'heap' });
    expect(capacity.filesBound).toBe(Number.POSITIVE_INFINITY);
    // --max-old-space-size=16384 lifts it, up to what memory allows.
    expect(
      sessionCapacity({ ...facts, openFiles: 2 ** 20, memoryBytes: 256 * GiB, heapLimitBytes: 16 * GiB }),
    ).toMatchObject({ maxConnections: 174_762, boundBy: 'heap' });
  });

  it('refuses to derive a limit when the reserve takes every file, saying what to raise', () => {
    const tight = { ...facts, openFiles: 1_100 };
    expect(() => sessionCapacity(tight)).toThrow(IotdrError);
    try {
      sessionCapacity(tight);
    } catch (error) {
      const e = error as IotdrError;
      expect(e.code).toBe('IOTDR_BROKER_NO_SESSION_ROOM');
      expect(e.message).toContain('the open-file limit is 1,100');
      expect(e.message).toContain('1,024 for its own files and 128 for handshakes in flight');
      expect(e.message).toContain('ulimit -n');
      expect(e.message).toContain('broker.maxConnections');
      expect(e.details).toMatchObject({ boundBy: 'files', openFiles: 1_100 });
    }
    // One file past the reserve and the line is one session.
    expect(sessionCapacity({ ...facts, openFiles: FILES_RESERVE + 128 + 1 }).maxConnections).toBe(1);
    expect(() => sessionCapacity({ ...facts, heapLimitBytes: 32 * KiB })).toThrow(/--max-old-space-size/);
  });

  it('rejects facts that are not facts', () => {
    expect(() => sessionCapacity({ ...facts, bytesPerSession: 0 })).toThrow(RangeError);
    expect(() => sessionCapacity({ ...facts, memoryBytes: Number.NaN })).toThrow(RangeError);
    expect(() => sessionCapacity({ ...facts, openFiles: -1 })).toThrow(RangeError);
    expect(() => sessionCapacity({ ...facts, handshakeSockets: -5 })).toThrow(RangeError);
  });
});

describe('parseOpenFileLimits', () => {
  it('reads the soft and hard limits of the open-file line', () => {
    expect(
      parseOpenFileLimits(
        limitsText('Max open files            20000                20000                files     '),
      ),
    ).toEqual({ soft: 20_000, hard: 20_000 });
    expect(
      parseOpenFileLimits(
        limitsText('Max open files            1024                 524288               files     '),
      ),
    ).toEqual({ soft: 1_024, hard: 524_288 });
  });

  it('reads "unlimited" as Infinity', () => {
    expect(
      parseOpenFileLimits(
        limitsText('Max open files            unlimited            unlimited            files     '),
      ),
    ).toEqual({ soft: Number.POSITIVE_INFINITY, hard: Number.POSITIVE_INFINITY });
    expect(parseOpenFileLimits(limitsText('Max open files 65536 unlimited files'))).toEqual({
      soft: 65_536,
      hard: Number.POSITIVE_INFINITY,
    });
  });

  it('answers undefined for garbage rather than a number it made up', () => {
    expect(parseOpenFileLimits('')).toBeUndefined();
    expect(parseOpenFileLimits('\u0000\u0001 binary junk')).toBeUndefined();
    expect(parseOpenFileLimits(limitsText('Max locked files 1 2 files'))).toBeUndefined();
    for (const line of [
      'Max open files',
      'Max open files            lots                 lots                 files',
      'Max open files            -1                   20000                files',
      'Max open files            1e5                  20000                files',
      'Max open files            20000',
      'Max open files            99999999999999999999 20000                files',
    ])
      expect(parseOpenFileLimits(limitsText(line)), line).toBeUndefined();
  });
});

describe('readMachineFacts', () => {
  const probes = {
    readLimits: () =>
      limitsText('Max open files            20000                20000                files     '),
    constrainedMemory: (): number | undefined => 2 ** 64,
    totalMemory: () => 24 * GiB,
    heapLimit: () => 4 * GiB,
  };

  it("takes the machine's memory when the process has no limit of its own", () => {
    for (const unconstrained of [2 ** 64, 0, undefined])
      expect(readMachineFacts({ ...probes, constrainedMemory: () => unconstrained })).toEqual({
        openFiles: { soft: 20_000, hard: 20_000 },
        openFilesSource: 'proc',
        memoryBytes: 24 * GiB,
        memorySource: 'machine',
        heapLimitBytes: 4 * GiB,
      });
  });

  it("takes a cgroup's memory limit when it is below the machine's", () => {
    expect(readMachineFacts({ ...probes, constrainedMemory: () => 2 * GiB })).toMatchObject({
      memoryBytes: 2 * GiB,
      memorySource: 'constrained',
    });
  });

  it('falls back to a fixed open-file figure where /proc/self/limits is missing or unreadable', () => {
    const missing = () => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    };
    for (const readLimits of [missing, () => 'nothing useful'])
      expect(readMachineFacts({ ...probes, readLimits })).toMatchObject({
        openFiles: { soft: FALLBACK_OPEN_FILES, hard: FALLBACK_OPEN_FILES },
        openFilesSource: 'fallback',
      });
  });

  it.runIf(process.platform === 'linux')('reads this process on Linux', () => {
    const here = readMachineFacts();
    expect(here.openFilesSource).toBe('proc');
    expect(here.openFiles.soft).toBeGreaterThan(0);
    expect(here.memoryBytes).toBeGreaterThan(0);
  });
});

describe('resolveSessionLimit', () => {
  const machine: MachineFacts = {
    openFiles: { soft: 20_000, hard: 20_000 },
    openFilesSource: 'proc',
    memoryBytes: 24 * GiB,
    memorySource: 'machine',
    heapLimitBytes: 4 * GiB,
  };
  const logged = () => {
    const sink = new LogSink();
    return { sink, logger: createLogger({ level: 'debug', destination: sink.stream }) };
  };

  it('logs the derived figure once at info, with what bound it', () => {
    const { sink, logger } = logged();
    expect(resolveSessionLimit('auto', LINE, logger, machine)).toBe(18_848);
    const lines = sink.lines.filter((l) => String(l.msg).startsWith('session limit'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      maxConnections: 18_848,
      boundBy: 'files',
      openFiles: 20_000,
      bytesPerSession: DEFAULT_BYTES_PER_SESSION,
      heapBytesPerSession: DEFAULT_HEAP_BYTES_PER_SESSION,
    });
    expect(lines[0]?.msg).toBe(
      'session limit 18,848, bound by open files: soft limit 20,000 − 1,024 kept for the process − 128 for handshakes in flight',
    );
    expect(sink.lines.filter((l) => l.level === 40)).toHaveLength(0);
  });

  it('warns when the open-file soft limit is below the hard one', () => {
    const { sink, logger } = logged();
    resolveSessionLimit('auto', LINE, logger, { ...machine, openFiles: { soft: 4_096, hard: 65_536 } });
    const warnings = sink.lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain('ulimit -n 65536');
  });

  it('keeps a number as given, and warns when the machine cannot hold it', () => {
    const { sink, logger } = logged();
    expect(resolveSessionLimit(500, LINE, logger, machine)).toBe(500);
    expect(sink.lines).toHaveLength(0);
    expect(resolveSessionLimit(50_000, LINE, logger, machine)).toBe(50_000);
    expect(sink.lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      'maxConnections 50,000 is above the 18,848 sessions this machine holds ("auto"): the last sessions may fail for want of files or memory',
    ]);
  });
});

describe('createBroker with maxConnections auto', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry.close();
  });

  const gauge = async (metrics: import('prom-client').Registry) =>
    (await metrics.getSingleMetric('iotdr_broker_max_sessions')?.get())?.values[0]?.value;

  it("holds what this machine's facts allow, by default and when asked for", async () => {
    const expected = machineCapacity(readMachineFacts(), LINE);
    for (const limits of [{}, { maxConnections: 'auto' as const }]) {
      const broker = await startBroker(registry, { limits });
      try {
        expect(await gauge(broker.metrics)).toBe(expected.maxConnections);
        const info = broker.logs.lines.filter((l) => String(l.msg).startsWith('session limit'));
        expect(info).toHaveLength(1);
        expect(info[0]).toMatchObject({ maxConnections: expected.maxConnections, boundBy: expected.boundBy });
      } finally {
        await broker.close();
      }
    }
  });

  it('takes a number as the limit and refuses anything else', async () => {
    const broker = await startBroker(registry, { limits: { maxConnections: 3 } });
    try {
      expect(await gauge(broker.metrics)).toBe(3);
    } finally {
      await broker.close();
    }
    await expect(
      startBroker(registry, { limits: { maxConnections: 'lots' as unknown as number } }),
    ).rejects.toSatisfy(
      (error: unknown) =>
        error instanceof ValidationError &&
        error.issues[0]?.path === 'limits.maxConnections' &&
        error.message.includes('must be "auto" or a positive number, got lots'),
    );
  });
});

/**
 * How many live sessions a broker can hold on this machine (docs/broker.md, "How many sessions a
 * broker holds"). Every session holds one socket (a file descriptor), resident memory, and
 * JavaScript objects in V8's heap, whose limit is its own whatever the machine's memory: the
 * process's open-file limit, its memory and its heap limit each bound the figure.
 * `sessionCapacity` is the arithmetic on given facts; `readMachineFacts` reads this process's.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from '../common/index.js';
import { noSessionRoom } from './errors.js';

/**
 * Descriptors the process keeps for itself, not for sessions: Node's and libuv's own, three per
 * SQLite database (registry, event bus, dead letters), the API and command-and-control listeners
 * and their clients (operators, the dashboard, the control process, the peers' replication pulls),
 * outbound replication, health probes, webhooks and rule actions, and the logs. A broker with its
 * registry holds 35 at rest (`npm run bench:session-memory`); 1,024 leaves room for hundreds of
 * HTTP clients at once and costs a broker on the usual limits (65,536 and up) under 2% of its
 * sessions.
 */
export const FILES_RESERVE = 1_024;

/**
 * Share of the process's memory, and of V8's heap, the sessions may take. The rest is the heap's
 * room to collect (a mark-compact needs free space beside what is live; a heap run near its limit
 * spends its time collecting, then dies), full TLS handshakes in flight (a storm runs up to 128 at
 * once), the registry's caches, SQLite's page caches, the event bus, rules and shadows, and the
 * bursts of a reconnecting fleet, whose PUBLISHes queue while their sessions settle.
 */
export const SESSION_MEMORY_SHARE = 0.5;

/**
 * Resident memory (RSS) one live session costs the broker's process, in bytes: the larger kind,
 * rounded up to 128 KiB, about 1.6× for headroom (sessions that publish, queue QoS 1 messages,
 * hold more subscriptions). Measured with `npm run bench:session-memory` (2,000 sessions of each
 * kind, each subscribed as the device SDK does; Node 20.20, 2 cores, two runs): mutual TLS
 * 80,937–83,884 B, token 53,185–62,409 B of RSS per session.
 */
export const DEFAULT_BYTES_PER_SESSION = 128 * 1024;

/**
 * The part of a session in V8's heap, in bytes, rounded up with the same headroom: 48 KiB.
 * Measured in the same runs: mutual TLS 30,551 B, token 30,461 B of heap per session (external
 * memory, Buffers, grows by under 500 B).
 */
export const DEFAULT_HEAP_BYTES_PER_SESSION = 48 * 1024;

/**
 * Open files assumed where /proc/self/limits cannot be read (not Linux): macOS grants a process at
 * most OPEN_MAX (10,240), which Node raises its soft limit to at start; Windows has no such table
 * for sockets, and the figure keeps the broker within what an untuned host holds.
 */
export const FALLBACK_OPEN_FILES = 10_240;

/** What the capacity is derived from. */
export interface CapacityFacts {
  /** The process's soft limit on open files (RLIMIT_NOFILE); Infinity when unlimited. */
  openFiles: number;
  /** Bytes of memory the process may use: its cgroup's limit when it has one, else the machine's. */
  memoryBytes: number;
  /** Resident bytes one live session costs (in practice DEFAULT_BYTES_PER_SESSION). */
  bytesPerSession: number;
  /** V8's heap limit in bytes (`heap_size_limit`; `--max-old-space-size` sets it). */
  heapLimitBytes: number;
  /** Bytes of V8 heap one live session holds (in practice DEFAULT_HEAP_BYTES_PER_SESSION). */
  heapBytesPerSession: number;
  /**
   * Sockets that are not sessions yet but hold a descriptor of their own: handshakes in flight
   * (limits.maxHandshakesInFlight). Connections waiting for a slot take none of their own: the
   * broker admits to its line only as many as its sessions leave room for.
   */
  handshakeSockets: number;
}

/** Which fact bound the figure. */
export type CapacityBound = 'files' | 'memory' | 'heap';

/** The sessions a broker can hold, and why. */
export interface SessionCapacity {
  /** The smallest of the bounds: the broker's session limit. */
  maxConnections: number;
  boundBy: CapacityBound;
  /** The open-file soft limit it was derived from (Infinity: unlimited). */
  files: number;
  memoryBytes: number;
  bytesPerSession: number;
  heapLimitBytes: number;
  heapBytesPerSession: number;
  /** Sessions the open files leave room for: files − FILES_RESERVE − handshakeSockets. */
  filesBound: number;
  /** Sessions the memory leaves room for: SESSION_MEMORY_SHARE × memoryBytes ÷ bytesPerSession. */
  memoryBound: number;
  /** Sessions the heap leaves room for: SESSION_MEMORY_SHARE × heapLimitBytes ÷ heapBytesPerSession. */
  heapBound: number;
}

/** A limit as a log field: JSON has no Infinity. */
function field(n: number): number | 'unlimited' {
  return Number.isFinite(n) ? n : 'unlimited';
}

/** A whole number as the logs and messages print it: 17,848; Infinity as "unlimited". */
function count(n: number): string {
  return Number.isFinite(n) ? Math.floor(n).toLocaleString('en-US') : 'unlimited';
}

function positive(name: string, value: number, finite = true): void {
  if (!(value > 0) || (finite && !Number.isFinite(value)))
    throw new RangeError(`${name} must be a positive number, got ${value}`);
}

/** What to raise when a bound leaves no room. */
const REMEDY: Record<CapacityBound, string> = {
  files: 'raise the open-file limit (ulimit -n, or LimitNOFILE= in a systemd unit)',
  memory: 'give the process more memory',
  heap: "raise V8's heap limit (node --max-old-space-size=MiB, e.g. in NODE_OPTIONS)",
};

/**
 * The session limit the facts allow: the smallest of the open-file, memory and heap bounds.
 * Throws IOTDR_BROKER_NO_SESSION_ROOM when they leave no room for a single session: a broker that
 * would run out of files or memory on its first connection should not start, and the message
 * says what to raise. No floor: a guessed minimum would only move the failure to the first storm.
 */
export function sessionCapacity(facts: CapacityFacts): SessionCapacity {
  positive('openFiles', facts.openFiles, false);
  positive('memoryBytes', facts.memoryBytes);
  positive('bytesPerSession', facts.bytesPerSession);
  positive('heapLimitBytes', facts.heapLimitBytes);
  positive('heapBytesPerSession', facts.heapBytesPerSession);
  if (!(facts.handshakeSockets >= 0))
    throw new RangeError(`handshakeSockets must be 0 or more, got ${facts.handshakeSockets}`);
  const bounds: Record<CapacityBound, number> = {
    files: Number.isFinite(facts.openFiles)
      ? Math.floor(facts.openFiles) - FILES_RESERVE - facts.handshakeSockets
      : Number.POSITIVE_INFINITY,
    memory: Math.floor((SESSION_MEMORY_SHARE * facts.memoryBytes) / facts.bytesPerSession),
    heap: Math.floor((SESSION_MEMORY_SHARE * facts.heapLimitBytes) / facts.heapBytesPerSession),
  };
  const boundBy = (['files', 'memory', 'heap'] as const).reduce((a, b) => (bounds[b] < bounds[a] ? b : a));
  const maxConnections = bounds[boundBy];
  if (maxConnections < 1) {
    const share = `${SESSION_MEMORY_SHARE * 100}%`;
    const why: Record<CapacityBound, string> = {
      files: `the open-file limit is ${count(facts.openFiles)}, and the process keeps ${count(FILES_RESERVE)} for its own files and ${count(facts.handshakeSockets)} for handshakes in flight`,
      memory: `${share} of ${count(facts.memoryBytes)} bytes of memory holds no session of ${count(facts.bytesPerSession)} bytes`,
      heap: `${share} of V8's ${count(facts.heapLimitBytes)}-byte heap holds no session of ${count(facts.heapBytesPerSession)} bytes`,
    };
    throw noSessionRoom(
      `no room for a single broker session: ${why[boundBy]}; ${REMEDY[boundBy]}, or set broker.maxConnections to a number`,
      { boundBy, ...facts, filesReserve: FILES_RESERVE },
    );
  }
  return {
    maxConnections,
    boundBy,
    files: facts.openFiles,
    memoryBytes: facts.memoryBytes,
    bytesPerSession: facts.bytesPerSession,
    heapLimitBytes: facts.heapLimitBytes,
    heapBytesPerSession: facts.heapBytesPerSession,
    filesBound: bounds.files,
    memoryBound: bounds.memory,
    heapBound: bounds.heap,
  };
}

/** Soft and hard limits on open files; Infinity for "unlimited". */
export interface OpenFileLimits {
  soft: number;
  hard: number;
}

function limitValue(word: string | undefined): number | undefined {
  if (word === 'unlimited') return Number.POSITIVE_INFINITY;
  // 15 digits at most: every such number is exact as a double.
  if (word === undefined || !/^\d{1,15}$/.test(word)) return undefined;
  return Number(word);
}

/**
 * The "Max open files" line of a /proc/<pid>/limits text (proc(5)): its soft and hard limits, or
 * undefined when the line is missing or holds anything but numbers and "unlimited".
 */
export function parseOpenFileLimits(text: string): OpenFileLimits | undefined {
  const label = 'Max open files';
  const line = text.split('\n').find((l) => l.startsWith(label));
  if (line === undefined) return undefined;
  const [soft, hard] = line.slice(label.length).trim().split(/\s+/).map(limitValue);
  if (soft === undefined || hard === undefined) return undefined;
  return { soft, hard };
}

/** This process's facts, as `readMachineFacts` found them. */
export interface MachineFacts {
  openFiles: OpenFileLimits;
  /** `proc`: read from /proc/self/limits; `fallback`: FALLBACK_OPEN_FILES, the limits unknown. */
  openFilesSource: 'proc' | 'fallback';
  memoryBytes: number;
  /** `constrained`: the process's cgroup limit; `machine`: the machine's total memory. */
  memorySource: 'constrained' | 'machine';
  heapLimitBytes: number;
}

/** Where `readMachineFacts` looks; each part replaceable in a test. */
export interface MachineProbes {
  /** The text of /proc/self/limits; throws where there is none. */
  readLimits(): string;
  /** process.constrainedMemory(): undefined, 0 or 2^64 when unconstrained. */
  constrainedMemory(): number | undefined;
  totalMemory(): number;
  heapLimit(): number;
}

const SYSTEM_PROBES: MachineProbes = {
  readLimits: () => readFileSync('/proc/self/limits', 'utf8'),
  constrainedMemory: () => process.constrainedMemory?.(),
  totalMemory: totalmem,
  heapLimit: () => getHeapStatistics().heap_size_limit,
};

/**
 * This process's open-file limits, the memory it may use and V8's heap limit. Node raises its
 * soft open-file limit to the hard one at start, so the hard limit (`ulimit -Hn`, systemd's
 * LimitNOFILE) is the one an operator raises.
 */
export function readMachineFacts(probes: MachineProbes = SYSTEM_PROBES): MachineFacts {
  let limits: OpenFileLimits | undefined;
  try {
    limits = parseOpenFileLimits(probes.readLimits());
  } catch {
    limits = undefined;
  }
  const total = probes.totalMemory();
  const constrained = probes.constrainedMemory();
  // Node 20 answers 2^64 (some versions 0) for a process without a memory limit.
  const isConstrained = constrained !== undefined && constrained > 0 && constrained < total;
  return {
    openFiles: limits ?? { soft: FALLBACK_OPEN_FILES, hard: FALLBACK_OPEN_FILES },
    openFilesSource: limits === undefined ? 'fallback' : 'proc',
    memoryBytes: isConstrained ? constrained : total,
    memorySource: isConstrained ? 'constrained' : 'machine',
    heapLimitBytes: probes.heapLimit(),
  };
}

/** The capacity of a process with these facts, at the measured costs of a session. */
export function machineCapacity(facts: MachineFacts, handshakeSockets: number): SessionCapacity {
  return sessionCapacity({
    openFiles: facts.openFiles.soft,
    memoryBytes: facts.memoryBytes,
    bytesPerSession: DEFAULT_BYTES_PER_SESSION,
    heapLimitBytes: facts.heapLimitBytes,
    heapBytesPerSession: DEFAULT_HEAP_BYTES_PER_SESSION,
    handshakeSockets,
  });
}

/**
 * The broker's session limit: `requested` when it is a number, else derived from the machine's
 * facts, logged once at info with what bound it. Warns when the open-file soft limit is below its
 * hard one, and when a number is above what the machine holds (it is kept: the operator decides).
 */
export function resolveSessionLimit(
  requested: number | 'auto',
  handshakeSockets: number,
  logger: Logger,
  facts: MachineFacts = readMachineFacts(),
): number {
  const { soft, hard } = facts.openFiles;
  if (soft < hard && Number.isFinite(hard))
    logger.warn(
      { openFiles: soft, openFilesHard: hard },
      `the open-file soft limit ${count(soft)} is below its hard limit ${count(hard)}, and every session holds a file: raise it (ulimit -n ${hard}, or LimitNOFILE= in a systemd unit)`,
    );
  if (requested !== 'auto') {
    let holds: number;
    try {
      holds = machineCapacity(facts, handshakeSockets).maxConnections;
    } catch {
      holds = 0;
    }
    if (requested > holds)
      logger.warn(
        { maxConnections: requested, machineHolds: holds },
        `maxConnections ${count(requested)} is above the ${count(holds)} sessions this machine holds ("auto"): the last sessions may fail for want of files or memory`,
      );
    return requested;
  }
  const capacity = machineCapacity(facts, handshakeSockets);
  const bound: Record<CapacityBound, string> = {
    files: `open files: soft limit ${count(soft)} − ${count(FILES_RESERVE)} kept for the process − ${count(handshakeSockets)} for handshakes in flight`,
    memory: `memory: ${SESSION_MEMORY_SHARE * 100}% of ${count(facts.memoryBytes)} bytes ÷ ${count(DEFAULT_BYTES_PER_SESSION)} per session`,
    heap: `the V8 heap: ${SESSION_MEMORY_SHARE * 100}% of its ${count(facts.heapLimitBytes)}-byte limit ÷ ${count(DEFAULT_HEAP_BYTES_PER_SESSION)} per session`,
  };
  logger.info(
    {
      maxConnections: capacity.maxConnections,
      boundBy: capacity.boundBy,
      filesBound: field(capacity.filesBound),
      memoryBound: capacity.memoryBound,
      heapBound: capacity.heapBound,
      openFiles: field(soft),
      openFilesHard: field(hard),
      openFilesSource: facts.openFilesSource,
      memoryBytes: facts.memoryBytes,
      memorySource: facts.memorySource,
      heapLimitBytes: facts.heapLimitBytes,
      bytesPerSession: DEFAULT_BYTES_PER_SESSION,
      heapBytesPerSession: DEFAULT_HEAP_BYTES_PER_SESSION,
    },
    `session limit ${count(capacity.maxConnections)}, bound by ${bound[capacity.boundBy]}`,
  );
  return capacity.maxConnections;
}

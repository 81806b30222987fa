/**
 * The simulated fleet: devices spread over worker threads (DeviceClient each), publishing telemetry
 * with a sequence number, and every device's state gathered here — where it is connected, when it
 * lost its connection and got it back, what it accepted and what brokers acknowledged. The drill
 * reads its reconnect times and message counts from this.
 */
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../common/index.js';
import { QUEUE_FILES, queueFileOf } from './queues.js';
import {
  type DeviceRecord,
  type FleetDevice,
  RETRY_CAUSES,
  type RetryCause,
  type WorkerCommand,
  type WorkerReport,
  type WorkerSetup,
} from './types.js';

export interface FleetOptions {
  devices: FleetDevice[];
  zone: string;
  caPem: string;
  dnsServers: string[];
  port: number;
  /** Messages per second of the whole fleet. Default: one per device per second. */
  ratePerSecond?: number;
  /** Folder of the devices' queue files (one SQLite file each). */
  queueDir: string;
  /** Worker threads. Default: the machine's parallelism, at most one per 50 devices. */
  workers?: number;
  /** DNS re-check interval of each device, ms. Default 5000 (the SDK's). */
  dnsRecheckMs?: number;
  backoff?: { baseMs: number; capMs: number };
  /** Called with every worker error that is not a refused message (full queue). */
  onError?: (message: string) => void;
  /**
   * Give every device its own loopback source address (127.100.0.1, 127.100.0.2, …), as a real
   * fleet connects from many addresses: the brokers' per-address connection limit then applies to
   * each device, not to the whole fleet at once. Only for brokers on loopback addresses.
   */
  spreadSources?: boolean;
  /**
   * Devices started per second over the fleet, as a fleet powers on over time rather than in one
   * instant (reconnections after a failover are not spread: that storm is what a drill measures).
   * Default: all at once.
   */
  startPerSecond?: number;
  /** Region names by broker address: where a device is, when its DNS answer named no region. */
  regionsByAddress?: Record<string, string>;
}

export interface FleetSummary {
  devices: number;
  connected: number;
  byRegion: Record<string, number>;
  accepted: number;
  acked: number;
  queued: number;
  /** Moves to another region or address, over the fleet. */
  moves: number;
  /** Failed connects over the fleet, by cause, and the time backoff waited before retrying, ms. */
  retries: Record<RetryCause, number>;
  backoffMs: number;
}

/** `48/50 connected (us-west 48), 376 accepted, 364 acked, 12 queued, 50 moves`. */
export function summaryLine(s: FleetSummary): string {
  const regions = Object.entries(s.byRegion)
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
  return `${s.connected}/${s.devices} connected (${regions || 'none'}), ${s.accepted} accepted, ${s.acked} acked, ${s.queued} queued, ${s.moves} moves`;
}

/** Device `i`'s own loopback address: 127.<from>.0.1 onwards (127.100.0.1 by default), 250 per /24, never .0 or .255. */
export function loopbackSource(i: number, from = 100): string {
  const block = Math.floor(i / 250);
  return `127.${from + Math.floor(block / 250)}.${block % 250}.${(i % 250) + 1}`;
}

export class Fleet {
  readonly #workers: Worker[];
  readonly #records = new Map<string, DeviceRecord>();
  readonly #stopped: Promise<void>[] = [];

  private constructor(workers: Worker[]) {
    this.#workers = workers;
  }

  /** Starts every device; resolves once each worker runs its devices (not once they connected). */
  static async start(options: FleetOptions): Promise<Fleet> {
    mkdirSync(options.queueDir, { recursive: true, mode: 0o700 });
    const count = Math.max(
      1,
      Math.min(
        options.workers ?? availableParallelism(),
        Math.ceil(options.devices.length / 50),
        QUEUE_FILES,
      ),
    );
    const rate = options.ratePerSecond ?? options.devices.length;
    const workers: Worker[] = [];
    const fleet = new Fleet(workers);
    const ready: Promise<void>[] = [];
    for (let w = 0; w < count; w++) {
      const devices = options.devices
        .map((d, i) => (options.spreadSources ? { ...d, localAddress: loopbackSource(i) } : d))
        .filter((d) => queueFileOf(d.thingName) % count === w);
      const setup: WorkerSetup = {
        devices,
        zone: options.zone,
        caPem: options.caPem,
        dnsServers: options.dnsServers,
        port: options.port,
        ratePerDevice: options.devices.length === 0 ? 0 : rate / options.devices.length,
        queueDir: options.queueDir,
        dnsRecheckMs: options.dnsRecheckMs ?? 5000,
        backoff: options.backoff ?? { baseMs: 200, capMs: 10_000 },
        regionsByAddress: options.regionsByAddress ?? {},
        startSpacingMs: options.startPerSecond ? (1000 * count) / options.startPerSecond : 0,
      };
      const worker = startWorker(import.meta.url, './worker', { workerData: setup });
      workers.push(worker);
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.on('message', (report: WorkerReport) => {
            if (report.type === 'ready') resolve();
            else if (report.type === 'records')
              for (const r of report.records) fleet.#records.set(r.thingName, r);
            else if (report.type === 'error') options.onError?.(report.message);
          });
          worker.once('error', reject);
        }),
      );
      fleet.#stopped.push(new Promise<void>((resolve) => worker.once('exit', () => resolve())));
    }
    await Promise.all(ready);
    return fleet;
  }

  /** Every device's latest state (as of the last report, at most 100 ms old). */
  records(): DeviceRecord[] {
    return [...this.#records.values()];
  }

  summary(): FleetSummary {
    const out: FleetSummary = {
      devices: 0,
      connected: 0,
      byRegion: {},
      accepted: 0,
      acked: 0,
      queued: 0,
      moves: 0,
      retries: Object.fromEntries(RETRY_CAUSES.map((c) => [c, 0])) as Record<RetryCause, number>,
      backoffMs: 0,
    };
    for (const r of this.#records.values()) {
      out.devices++;
      if (r.region !== null) {
        out.connected++;
        out.byRegion[r.region] = (out.byRegion[r.region] ?? 0) + 1;
      }
      out.accepted += r.accepted;
      out.acked += r.acked;
      out.queued += r.queueDepth;
      out.moves += r.moves;
      for (const c of RETRY_CAUSES) out.retries[c] += r.retries[c];
      out.backoffMs += r.backoffMs;
    }
    return out;
  }

  /** Stops publishing new messages (queued ones keep going out). */
  pause(): void {
    this.#tell({ type: 'pause' });
  }

  resume(): void {
    this.#tell({ type: 'resume' });
  }

  async stop(): Promise<void> {
    this.#tell({ type: 'stop' });
    const exited = Promise.all(this.#stopped);
    const timeout = new Promise((r) => setTimeout(r, 10_000).unref());
    await Promise.race([exited, timeout]);
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }

  #tell(command: WorkerCommand): void {
    for (const w of this.#workers) w.postMessage(command);
  }
}

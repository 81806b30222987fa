import { type Clock, systemClock, systemTimers, type Timers } from '../../common/index.js';
import type { DeviceSummary, IngestStatus } from '../types.js';
import {
  DEFAULT_CONTROL_POLL_MS,
  DEFAULT_QUERY_POLL_MS,
  DEFAULT_REGION_POLL_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type LiveViewOptions,
  MAX_GAP_DEVICES,
  MAX_SWITCHES,
  RATE_WINDOW_SECONDS,
} from './options.js';
import type {
  LiveSnapshot,
  RegionHealthView,
  RegionView,
  ReplicationLinkView,
  SwitchView,
} from './snapshot.js';
import {
  type ControlRead,
  describeFailure,
  parseSwitch,
  readConnected,
  readControl,
  readHealth,
  readReplication,
} from './sources.js';

/** Most timeline pages read in one poll, so a huge backlog is caught up over several polls. */
const TIMELINE_PAGES_PER_POLL = 20;
const TIMELINE_PAGE = 100;

interface RegionReads {
  health: RegionHealthView;
  connected: number | null;
  replication: ReplicationLinkView[];
  errors: Partial<Record<'health' | 'connections' | 'replication', string>>;
}

type Listener = (snapshot: LiveSnapshot) => void;

/**
 * Polls everything the dashboard shows — the controller, every region, analytics' own store — and
 * keeps one snapshot of it. Each source has its own loop (a slow region never delays the active
 * region), loops never overlap themselves, and a source that fails is shown as failing while the
 * rest of the snapshot stays current. Listeners hear of every snapshot that differs from the last.
 */
export class LiveView {
  readonly #options: LiveViewOptions;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #timeoutMs: number;
  readonly #listeners = new Set<Listener>();
  readonly #handles = new Set<unknown>();
  #running = false;

  #control: ControlRead | null = null;
  #controlError: string | undefined;
  #controlContactAt: number | null = null;
  readonly #regions = new Map<string, RegionReads>();
  #rates: Record<string, Array<[number, number]>> = {};
  readonly #timeline = new Map<number, SwitchView>();
  #timelineCursor: number | undefined;
  #gapDevices: DeviceSummary[] = [];
  #ingest: IngestStatus[] = [];
  #analyticsError: string | undefined;

  #snapshot: LiveSnapshot;
  #key = '';

  constructor(options: LiveViewOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#timers = options.timers ?? systemTimers;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    for (const region of options.config.regions) {
      this.#regions.set(region.name, {
        health: { status: 'unknown', components: {}, checkedAt: null },
        connected: null,
        replication: [],
        errors: {},
      });
    }
    this.#rates = this.#emptyRates();
    this.#snapshot = this.#build();
  }

  /** The latest snapshot (never stale by more than one poll of each source). */
  snapshot(): LiveSnapshot {
    return this.#snapshot;
  }

  /** Calls `listener` with every snapshot that differs from the previous one; returns the unsubscribe. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop(this.#options.pollMs ?? DEFAULT_CONTROL_POLL_MS, () => this.#pollControl());
    for (const region of this.#options.config.regions)
      this.#loop(this.#options.regionPollMs ?? DEFAULT_REGION_POLL_MS, () => this.#pollRegion(region.name));
    this.#loop(this.#options.queryPollMs ?? DEFAULT_QUERY_POLL_MS, () => this.#pollQueries());
  }

  /** Stops every loop; reads in flight finish but change nothing. */
  stop(): void {
    this.#running = false;
    for (const handle of this.#handles) this.#timers.clearTimeout(handle);
    this.#handles.clear();
    this.#listeners.clear();
  }

  /** Runs `task` now and then `intervalMs` after each run started, or at once if it took longer. */
  #loop(intervalMs: number, task: () => Promise<void>): void {
    const run = async () => {
      if (!this.#running) return;
      const startedAt = this.#clock.now();
      await task();
      if (!this.#running) return;
      this.#refresh();
      const wait = Math.max(0, intervalMs - (this.#clock.now() - startedAt));
      const handle = this.#timers.setTimeout(() => {
        this.#handles.delete(handle);
        start();
      }, wait);
      this.#handles.add(handle);
    };
    // Every read catches its own failures; this only guards against a bug ending the loop unseen.
    const start = () =>
      void run().catch((error: unknown) =>
        this.#options.logger.error({ err: error }, 'live view poll failed'),
      );
    start();
  }

  async #pollControl(): Promise<void> {
    try {
      this.#control = await readControl(this.#options.control, this.#timeoutMs);
      this.#controlError = undefined;
      this.#controlContactAt = this.#clock.now();
    } catch (error) {
      this.#controlError = describeFailure(error);
    }
  }

  async #pollRegion(name: string): Promise<void> {
    const url = this.#options.regionUrls[name];
    const reads = this.#regions.get(name);
    if (!reads) return;
    if (url === undefined) {
      const error = 'no URL configured for this region';
      reads.errors = { health: error, connections: error, replication: error };
      return;
    }
    const access = this.#options.access(name);
    const [health, connected, replication] = await Promise.allSettled([
      readHealth(url, access, this.#timeoutMs, this.#clock.now()),
      readConnected(url, access, this.#timeoutMs),
      readReplication(url, access, this.#timeoutMs),
    ]);
    const errors: RegionReads['errors'] = {};
    if (health.status === 'fulfilled') reads.health = health.value;
    else {
      errors.health = describeFailure(health.reason);
      reads.health = { status: 'unreachable', components: {}, checkedAt: this.#clock.now() };
    }
    if (connected.status === 'fulfilled') reads.connected = connected.value;
    else {
      errors.connections = describeFailure(connected.reason);
      reads.connected = null;
    }
    if (replication.status === 'fulfilled') reads.replication = replication.value;
    else errors.replication = describeFailure(replication.reason);
    reads.errors = errors;
  }

  async #pollQueries(): Promise<void> {
    const { queries } = this.#options;
    try {
      const second = Math.floor(this.#clock.now() / 1000) * 1000;
      const from = second - RATE_WINDOW_SECONDS * 1000;
      const [points, gapDevices] = await Promise.all([
        queries.rates({ from, to: second }),
        queries.devices({ limit: MAX_GAP_DEVICES, withGaps: true }),
        this.#readTimeline(),
      ]);
      const rates = this.#emptyRates(from);
      for (const point of points) {
        const slot = rates[point.region]?.[(point.second - from) / 1000];
        if (slot) slot[1] = point.messages;
      }
      this.#rates = rates;
      this.#gapDevices = gapDevices;
      this.#ingest = queries.ingest();
      this.#analyticsError = undefined;
    } catch (error) {
      this.#analyticsError = describeFailure(error);
    }
  }

  /** Follows the mirrored decision log from where the last poll stopped, keeping the latest switches. */
  async #readTimeline(): Promise<void> {
    for (let page = 0; page < TIMELINE_PAGES_PER_POLL; page++) {
      const entries = await this.#options.queries.timeline({
        limit: TIMELINE_PAGE,
        type: 'switch',
        ...(this.#timelineCursor === undefined ? {} : { after: this.#timelineCursor }),
      });
      for (const entry of entries) {
        this.#timelineCursor = entry.seq;
        const view = parseSwitch({ seq: entry.seq, at: entry.at, ...entry.event });
        if (view) this.#timeline.set(view.seq, view);
      }
      const oldest = [...this.#timeline.keys()].sort((a, b) => b - a).slice(MAX_SWITCHES);
      for (const seq of oldest) this.#timeline.delete(seq);
      if (entries.length < TIMELINE_PAGE) return;
    }
  }

  /** Zero messages for every second of the window, per configured region. */
  #emptyRates(from = Math.floor(this.#clock.now() / 1000) * 1000 - RATE_WINDOW_SECONDS * 1000) {
    const rates: Record<string, Array<[number, number]>> = {};
    for (const region of this.#options.config.regions)
      rates[region.name] = Array.from({ length: RATE_WINDOW_SECONDS }, (_, i) => [from + i * 1000, 0]);
    return rates;
  }

  #switches(): SwitchView[] {
    const merged = new Map(this.#timeline);
    // The controller's copy of its last switch is fresher: the executor fills in the timings of
    // DNS, notices and disconnects after the decision, and the mirror may not have them yet.
    const last = this.#control?.lastSwitch;
    if (last) merged.set(last.seq, last);
    return [...merged.values()].sort((a, b) => b.seq - a.seq).slice(0, MAX_SWITCHES);
  }

  #build(): LiveSnapshot {
    const regions = [...this.#options.config.regions].sort((a, b) => a.priority - b.priority);
    const primary = regions[0]?.name;
    const ingest = new Map(this.#ingest.map((s) => [s.region, s]));
    const views: RegionView[] = this.#options.config.regions.map((region) => {
      const reads = this.#regions.get(region.name);
      return {
        name: region.name,
        priority: region.priority,
        role: region.name === primary ? 'primary' : 'secondary',
        controllerStatus: this.#control?.regionStatus[region.name] ?? null,
        health: reads?.health ?? { status: 'unknown', components: {}, checkedAt: null },
        connected: reads?.connected ?? null,
        replication: reads?.replication ?? [],
        ingest: ingest.get(region.name) ?? null,
        errors: reads?.errors ?? {},
      };
    });
    return {
      at: this.#clock.now(),
      zone: this.#options.config.zone,
      active: this.#control?.active ?? null,
      control: {
        reachable: this.#controlError === undefined && this.#controlContactAt !== null,
        ...(this.#controlError === undefined ? {} : { error: this.#controlError }),
        lastContactAt: this.#controlContactAt,
      },
      regions: views,
      rates: this.#rates,
      switches: this.#switches(),
      gapDevices: this.#gapDevices,
      ...(this.#analyticsError === undefined ? {} : { analyticsError: this.#analyticsError }),
    };
  }

  /** Rebuilds the snapshot and tells the listeners when anything but its time changed. */
  #refresh(): void {
    const snapshot = this.#build();
    const { at: _at, ...rest } = snapshot;
    const key = JSON.stringify(rest);
    this.#snapshot = snapshot;
    if (key === this.#key) return;
    this.#key = key;
    for (const listener of this.#listeners) {
      try {
        listener(snapshot);
      } catch (error) {
        this.#options.logger.warn({ err: error }, 'live view listener failed');
      }
    }
  }
}

import type { Agent } from 'node:https';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../common/index.js';
import type { RegistryService } from '../registry/index.js';
import { HttpChangeFeed } from './feed-http.js';
import { Replicator } from './replicator.js';
import { RegistryTarget } from './targets/registry.js';
import type { ApplyTarget, ChangeFeed, LinkStatus } from './types.js';

/** Replication settings, from the `replication` section (config.ts), durations in ms. */
export interface ReplicationSettings {
  batchSize: number;
  waitMs: number;
  snapshotPageSize: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Tombstones older than this are purged (ms). */
  tombstoneRetentionMs: number;
  /** Change records older than this are pruned (ms); a link further behind bootstraps. */
  changeLogRetentionMs: number;
  /** How often tombstones and old change records are removed (ms). */
  maintenanceIntervalMs: number;
}

export interface ReplicationOptions {
  service: RegistryService;
  peers: ReadonlyArray<{ name: string; apiUrl: string }>;
  /**
   * How this region proves itself to its peers: its site agent (`agentFor` the peer, mutual TLS,
   * which also checks the peer's certificate), or a bearer token with the replicator role on plain
   * loopback links.
   */
  credentials: { agentFor: (peer: string) => Agent } | { token: string };
  settings: ReplicationSettings;
  /** Regions whose token changes are applied (`replication.tokensFrom`); undefined: every peer. */
  tokensFrom?: readonly string[];
  metrics: Registry;
  logger: Logger;
  /** The change feed of a peer; HTTP by default (tests may give another). */
  feedFor?: (peer: { name: string; apiUrl: string }) => ChangeFeed;
  target?: ApplyTarget;
}

export interface ReplicationStatus {
  region: string;
  links: LinkStatus[];
}

/**
 * All of a region's replication: one link per peer into the local registry, their metrics, and
 * the upkeep of tombstones and the change log.
 */
export class Replication {
  readonly target: ApplyTarget;
  readonly links: ReadonlyMap<string, Replicator>;
  readonly #service: RegistryService;
  readonly #settings: ReplicationSettings;
  readonly #logger: Logger;
  #maintenance: NodeJS.Timeout | undefined;

  constructor(options: ReplicationOptions) {
    this.#service = options.service;
    this.#settings = options.settings;
    this.#logger = options.logger;
    this.target =
      options.target ??
      new RegistryTarget(options.service, {
        ...(options.tokensFrom === undefined ? {} : { tokensFrom: options.tokensFrom }),
      });
    const links = new Map<string, Replicator>();
    for (const peer of options.peers) {
      const feed =
        options.feedFor?.(peer) ??
        new HttpChangeFeed({
          baseUrl: peer.apiUrl,
          peer: peer.name,
          ...('token' in options.credentials
            ? { token: options.credentials.token }
            : { agent: options.credentials.agentFor(peer.name) }),
        });
      links.set(
        peer.name,
        new Replicator({
          peer: peer.name,
          feed,
          target: this.target,
          batchSize: options.settings.batchSize,
          waitMs: options.settings.waitMs,
          snapshotPageSize: options.settings.snapshotPageSize,
          retryBaseMs: options.settings.retryBaseMs,
          retryMaxMs: options.settings.retryMaxMs,
          clock: options.service.clock,
        }),
      );
    }
    this.links = links;
    this.#instrument(options.metrics);
  }

  #instrument(metrics: Registry): void {
    const changes = new Counter({
      name: 'iotdr_replication_changes_total',
      help: 'Changes received from peers, by outcome (applied, stale, dead-letter)',
      labelNames: ['peer', 'outcome'] as const,
      registers: [metrics],
    });
    const lag = new Histogram({
      name: 'iotdr_replication_lag_seconds',
      help: 'Origin commit to applied here, per applied change',
      labelNames: ['peer'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [metrics],
    });
    const failures = new Counter({
      name: 'iotdr_replication_failures_total',
      help: 'Failed pulls or applies of a link (each is retried)',
      labelNames: ['peer'] as const,
      registers: [metrics],
    });
    const links = this.links;
    const gauge = (name: string, help: string, value: (s: LinkStatus) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['peer'] as const,
        registers: [metrics],
        collect() {
          for (const link of links.values()) {
            const v = value(link.status());
            if (v !== null) this.set({ peer: link.peer }, v);
          }
        },
      });
    gauge('iotdr_replication_cursor', "Seq of the peer's log applied up to", (s) => s.cursor);
    gauge('iotdr_replication_lag_changes', "Peer's changes not applied yet", (s) => s.lagChanges);
    const target = this.target;
    new Gauge({
      name: 'iotdr_replication_dead_letters',
      help: "Peer's changes in the dead-letter table, waiting for an operator to retry or discard",
      labelNames: ['peer'] as const,
      registers: [metrics],
      async collect() {
        const letters = await target.deadLetters();
        for (const link of links.values()) {
          this.set({ peer: link.peer }, letters.filter((l) => l.peer === link.peer).length);
        }
      },
    });
    gauge(
      'iotdr_replication_link_up',
      '1 when the link is pulling or copying, 0 when retrying or stopped',
      (s) => (s.state.type === 'tailing' || s.state.type === 'bootstrapping' ? 1 : 0),
    );
    for (const link of this.links.values()) {
      link.on('applied', (event) => {
        for (const outcome of event.outcomes) changes.inc({ peer: event.peer, outcome });
        for (const ms of event.lagsMs) lag.observe({ peer: event.peer }, ms / 1000);
      });
      link.on('failure', ({ peer, error, attempt }) => {
        failures.inc({ peer });
        // First failure, then every tenth: a peer that is down does not flood the log.
        if (attempt === 1 || attempt % 10 === 0) {
          this.#logger.warn(
            { peer, attempt, err: error.message },
            `replication from ${peer} failing; retrying`,
          );
        }
      });
      link.on('state', (state) => {
        if (state.type === 'bootstrapping' && state.copied === 0) {
          this.#logger.info(
            { peer: link.peer, watermark: state.watermark },
            `copying a snapshot of ${link.peer}`,
          );
        }
      });
    }
  }

  start(): void {
    for (const link of this.links.values()) link.start();
    const interval = this.#settings.maintenanceIntervalMs;
    this.#maintenance = setInterval(() => {
      this.runMaintenance().catch((error: unknown) =>
        this.#logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'replication upkeep failed',
        ),
      );
    }, interval);
    this.#maintenance.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#maintenance);
    await Promise.all([...this.links.values()].map((link) => link.stop()));
  }

  async status(): Promise<ReplicationStatus> {
    const letters = await this.target.deadLetters();
    return {
      region: this.#service.region,
      links: [...this.links.values()].map((link) => ({
        ...link.status(),
        deadLetters: letters.filter((l) => l.peer === link.peer).length,
      })),
    };
  }

  /** Purges old tombstones and prunes old change records. */
  async runMaintenance(): Promise<{ tombstones: number; changes: number }> {
    const now = this.#service.clock.now();
    const tombstones = await this.#service.store.purgeTombstones(now - this.#settings.tombstoneRetentionMs);
    const changes = await this.#service.store.pruneChanges(now - this.#settings.changeLogRetentionMs);
    if (tombstones + changes > 0)
      this.#logger.info({ tombstones, changes }, 'purged old tombstones and change records');
    return { tombstones, changes };
  }
}

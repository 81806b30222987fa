/**
 * A DNS server in another process (`iotdr dns`) follows the control plane: it long-polls
 * GET /v1/failover/decision on every control node, each in its own loop, hands every decision with
 * a higher epoch than the one it serves to its provider (the built-in engine it serves from) and
 * keeps it in a file. A node that answers an older decision (one cut off from the leader, say) is
 * not wrong, only behind: its answer is ignored. When no node answers it keeps serving the last
 * decision, from that file after a restart too, and says so in its health; it never invents one.
 */
import { readFile } from 'node:fs/promises';
import type { Agent } from 'node:https';
import { Counter, Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import {
  abortableSleep,
  backoffMs,
  type Clock,
  type Logger,
  systemClock,
  writeFileAtomic,
} from '../common/index.js';
import type { CheckEntry, HealthResponse, HealthStatus } from '../health/index.js';
import { ApiClient, CallError } from '../http/index.js';
import { DECISION_ROUTE, type FollowedDecision, followedDecisionSchema } from './contracts.js';
import { StaleEpochError } from './errors.js';
import type { DnsProvider } from './providers/types.js';

/** How long one long poll waits for the next decision, ms. */
export const DEFAULT_FOLLOW_WAIT_MS = 10_000;
/** How long a request may take beyond its wait before the node counts as unreachable, ms. */
export const DEFAULT_FOLLOW_SLACK_MS = 3000;
/** Backoff after a failed request: full jitter between 0 and min(cap, base × 2^attempt), ms. */
export const DEFAULT_FOLLOW_RETRY = { baseMs: 200, capMs: 5000 } as const;

const fileSchema = z.object({ version: z.literal(1), decision: followedDecisionSchema }).strict();

/** connecting: no answer yet since start; connected: answered its last request; unreachable: did not. */
export type ControllerLink = 'connecting' | 'connected' | 'unreachable';

/** A control node the follower long-polls. */
export interface FollowedControlNode {
  /** The node's name: `control.nodes[].name`, `control` for the single node. */
  readonly name: string;
  /** Base URL of its control API. */
  readonly url: string;
  /** The name server's site agent for this node (mutual TLS): it checks the node's site certificate. */
  readonly agent?: Agent;
}

/** One control node's link, as the follower sees it. */
export interface ControlNodeStatus {
  readonly name: string;
  readonly url: string;
  readonly link: ControllerLink;
  /** When `link` took its current value. */
  readonly since: number;
  readonly lastContactAt: number | null;
  /** What its last answer could not be used for (refused, not a decision, fenced), or why it is unreachable. */
  readonly lastError: string | null;
  /** The epoch of the decision it last answered; null before its first. */
  readonly epoch: number | null;
}

export interface FollowerStatus {
  /** connected while at least one node answered its last request; unreachable when none did. */
  readonly controller: ControllerLink;
  /** When `controller` took its current value. */
  readonly since: number;
  /** The last answer from any node. */
  readonly lastContactAt: number | null;
  /** A node's last answer is the served decision itself (and it was not refused). */
  readonly confirmed: boolean;
  /** What the DNS answers now; null before the first decision (the names answer SERVFAIL). */
  readonly serving: FollowedDecision | null;
  /** When the served decision was applied here. */
  readonly servingSince: number | null;
  /** The served decision came from the file, and no node has confirmed it yet. */
  readonly restored: boolean;
  /** Every followed node, in the order given. */
  readonly nodes: readonly ControlNodeStatus[];
}

export interface DnsFollowerOptions {
  /** Name of this server (its `dns.servers` label); the health response's serviceId. */
  readonly name: string;
  /** The control nodes to follow, at least one (each gets its own long poll). */
  readonly controls: readonly FollowedControlNode[];
  /** A bearer token with the reader role (or more), for nodes without an agent (plain loopback links). */
  readonly token?: string;
  /** Where decisions go: the built-in engine this process serves. */
  readonly provider: DnsProvider;
  /** The file that keeps the last decision across restarts (written atomically, mode 0600). */
  readonly statePath: string;
  readonly waitMs?: number;
  readonly slackMs?: number;
  readonly retry?: { readonly baseMs: number; readonly capMs: number };
  readonly metrics?: Registry;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** iotdr's version, for the health response. */
  readonly version?: string;
}

/** A followed node's mutable link state. */
interface NodeLink {
  readonly name: string;
  readonly url: string;
  readonly client: ApiClient;
  link: ControllerLink;
  since: number;
  lastContactAt: number | null;
  lastError: string | null;
  answered: FollowedDecision | null;
}

interface FollowerMetrics {
  readonly connected: Gauge;
  readonly epoch: Gauge;
  readonly applied: Counter;
  readonly failures: Counter;
  readonly nodeConnected: Gauge<'node'>;
  readonly nodeEpoch: Gauge<'node'>;
}

export class DnsFollower {
  readonly #options: DnsFollowerOptions;
  readonly #clock: Clock;
  readonly #nodes: readonly NodeLink[];
  readonly #stop = new AbortController();
  #loops: Promise<unknown> | undefined;
  /** Decisions are considered one at a time, so two nodes' answers cannot interleave. */
  #queue: Promise<void> = Promise.resolve();
  #controller: ControllerLink = 'connecting';
  #since: number;
  #serving: FollowedDecision | null = null;
  #servingSince: number | null = null;
  #restored = false;
  readonly #metrics: FollowerMetrics | undefined;

  constructor(options: DnsFollowerOptions) {
    if (options.controls.length === 0) throw new TypeError('DnsFollower needs at least one control node');
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#since = this.#clock.now();
    this.#nodes = options.controls.map((node) => ({
      name: node.name,
      url: node.url.replace(/\/+$/, ''),
      client: new ApiClient(
        `control node ${node.name}`,
        node.url.replace(/\/+$/, ''),
        node.agent === undefined ? options.token : undefined,
        node.agent,
      ),
      link: 'connecting',
      since: this.#since,
      lastContactAt: null,
      lastError: null,
      answered: null,
    }));
    this.#metrics = options.metrics ? followerMetrics(options.metrics) : undefined;
    this.#metrics?.connected.set(0);
    this.#metrics?.epoch.set(-1);
    for (const node of this.#nodes) {
      this.#metrics?.nodeConnected.set({ node: node.name }, 0);
      this.#metrics?.nodeEpoch.set({ node: node.name }, -1);
    }
  }

  /**
   * Serves the decision kept in the file (if any) before returning, then follows every node in the
   * background. A file that cannot be read or parsed is logged and ignored.
   */
  async start(): Promise<void> {
    if (this.#loops) return;
    const kept = await this.#readFile();
    if (kept) {
      await this.#options.provider.apply({ region: kept.region, address: kept.address, epoch: kept.epoch });
      this.#setServing(kept, true);
      this.#options.logger?.info(
        { region: kept.region, epoch: kept.epoch },
        'serving the last decision kept on disk until a control node answers',
      );
    }
    this.#loops = Promise.all(this.#nodes.map((node) => this.#follow(node)));
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loops;
    await this.#queue;
  }

  status(): FollowerStatus {
    const contacts = this.#nodes.flatMap((n) => (n.lastContactAt === null ? [] : [n.lastContactAt]));
    return {
      controller: this.#controller,
      since: this.#since,
      lastContactAt: contacts.length === 0 ? null : Math.max(...contacts),
      confirmed: this.#nodes.some((n) => this.#confirms(n)),
      serving: this.#serving,
      servingSince: this.#servingSince,
      restored: this.#restored,
      nodes: this.#nodes.map((n) => ({
        name: n.name,
        url: n.url,
        link: n.link,
        since: n.since,
        lastContactAt: n.lastContactAt,
        lastError: n.lastError,
        epoch: n.answered?.epoch ?? null,
      })),
    };
  }

  /**
   * The server's health (application/health+json): fail while it answers no decision; warn while
   * no node confirms the one it serves (none answers, each answers an older one or is refused, or
   * it was restored from disk); pass else. `control-node:reachability` has one entry per node.
   */
  health(): HealthResponse {
    const now = this.#clock.now();
    const time = new Date(now).toISOString();
    const s = this.status();
    const served = s.serving;
    const answers: CheckEntry = {
      componentId: 'answers',
      componentType: 'component',
      observedValue: served ? `${served.region}@${served.epoch}` : null,
      status: served ? 'pass' : 'fail',
      time,
      ...(served ? {} : { output: 'no decision yet: the fleet names answer SERVFAIL' }),
      critical: true,
    };
    const sinceContact = (at: number | null) => (at === null ? null : Math.max(0, now - at));
    const link: CheckEntry = {
      componentId: 'controller',
      componentType: 'system',
      observedValue: sinceContact(s.lastContactAt),
      observedUnit: 'ms since last contact',
      status: s.confirmed ? 'pass' : 'warn',
      time,
      ...(s.confirmed
        ? {}
        : {
            output: [
              s.controller === 'connected'
                ? 'no control node confirms the served decision'
                : `the control plane is ${s.controller} since ${iso(s.since)}`,
              ...this.#nodes.map((n) => `${n.name} (${n.url}) ${this.#describeNode(n)}`),
              served
                ? `serving the last decision: ${describeDecision(served)}${s.restored ? ', restored from disk' : ''}`
                : 'no decision to serve',
            ].join('; '),
          }),
      critical: false,
    };
    const nodes: CheckEntry[] = this.#nodes.map((n) => {
      const confirms = this.#confirms(n);
      return {
        componentId: n.name,
        componentType: 'system',
        observedValue: sinceContact(n.lastContactAt),
        observedUnit: 'ms since last contact',
        status: confirms ? 'pass' : 'warn',
        time,
        ...(confirms ? {} : { output: `${n.url} ${this.#describeNode(n)}` }),
        critical: false,
      };
    });
    const status: HealthStatus = !served ? 'fail' : s.confirmed ? 'pass' : 'warn';
    const outputs = [answers, link].flatMap((c) => (c.output ? [c.output] : []));
    return {
      status,
      version: this.#options.version ?? '0.0.0',
      releaseId: this.#options.version ?? '0.0.0',
      serviceId: this.#options.name,
      description: `iotdr DNS server ${this.#options.name}, following ${this.#nodes.map((n) => `${n.name} (${n.url})`).join(', ')}`,
      ...(outputs.length > 0 ? { output: outputs.join('; ') } : {}),
      checks: {
        'dns:answers': [answers],
        'control:reachability': [link],
        'control-node:reachability': nodes,
      },
    };
  }

  /** Whether the node's last answer is the served decision, unrefused: it confirms what the DNS answers. */
  #confirms(node: NodeLink): boolean {
    return (
      !this.#restored &&
      node.link === 'connected' &&
      node.lastError === null &&
      sameDecision(node.answered, this.#serving)
    );
  }

  #describeNode(node: NodeLink): string {
    const served = this.#serving;
    const answered = node.answered;
    switch (node.link) {
      case 'connecting':
        return 'has not answered yet';
      case 'unreachable':
        return `is unreachable since ${iso(node.since)}${node.lastError ? ` (${node.lastError})` : ''}`;
      case 'connected':
        if (node.lastError !== null) return `answers, but: ${node.lastError}`;
        if (answered === null) return 'answers';
        if (served !== null && answered.epoch < served.epoch)
          return `answers ${answered.region}@${answered.epoch}, older than the served ${served.region}@${served.epoch} (ignored)`;
        return `answers ${answered.region}@${answered.epoch}`;
    }
  }

  async #follow(node: NodeLink): Promise<void> {
    const signal = this.#stop.signal;
    const retry = this.#options.retry ?? DEFAULT_FOLLOW_RETRY;
    let failures = 0;
    // The first request answers at once, so the link is confirmed (or not) without waiting.
    let wait = 0;
    while (!signal.aborted) {
      try {
        // After the epoch this node last answered, not the served one: a node that is behind then
        // waits for its own next decision instead of answering its old one at once, again and again.
        const decision = await this.#fetch(node, node.answered?.epoch, wait, signal);
        // The node answered: reachable, whatever becomes of its decision here.
        node.answered = decision;
        this.#contact(node);
        await this.#serially(() => this.#consider(node, decision));
        failures = 0;
        wait = this.#options.waitMs ?? DEFAULT_FOLLOW_WAIT_MS;
      } catch (error) {
        if (signal.aborted) break;
        failures += 1;
        this.#failed(node, error);
        await abortableSleep(backoffMs(failures, retry.baseMs, retry.capMs, Math.random), signal);
        wait = 0;
      }
    }
  }

  async #fetch(
    node: NodeLink,
    after: number | undefined,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<FollowedDecision> {
    try {
      return await node.client.request(DECISION_ROUTE, {
        query: after !== undefined && waitMs > 0 ? { after, wait: waitMs } : {},
        timeoutMs: waitMs + (this.#options.slackMs ?? DEFAULT_FOLLOW_SLACK_MS),
        signal,
      });
    } catch (error) {
      if (!(error instanceof CallError)) throw error;
      const failure = error.failure;
      switch (failure.type) {
        case 'timeout':
          throw new ControllerUnreachableError(`no answer within ${failure.timeoutMs} ms`);
        case 'unreachable':
          throw new ControllerUnreachableError(`unreachable: ${failure.cause}`);
        case 'refused':
          throw new Error(`HTTP ${failure.status}${failure.code ? ` ${failure.code}` : ''}`);
        case 'unexpected':
          throw new Error(`the answer is not a decision: ${failure.why}`);
      }
    }
  }

  #serially(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** A node's answer: served when its epoch is higher than the served one's, ignored when lower. */
  async #consider(node: NodeLink, decision: FollowedDecision): Promise<void> {
    const served = this.#serving;
    if (sameDecision(decision, served)) {
      if (this.#restored) {
        this.#restored = false;
        this.#options.logger?.info(
          { node: node.name, region: decision.region, epoch: decision.epoch },
          'a control node confirms the decision kept on disk',
        );
      }
      return;
    }
    if (served !== null && decision.epoch < served.epoch) {
      // A node behind the others (cut off from the leader, or from etcd): not an error.
      this.#options.logger?.debug(
        { node: node.name, answered: decision.epoch, served: served.epoch },
        'a control node answers an older decision; ignored',
      );
      return;
    }
    try {
      await this.#options.provider.apply({
        region: decision.region,
        address: decision.address,
        epoch: decision.epoch,
      });
    } catch (error) {
      if (error instanceof StaleEpochError) {
        // The same epoch naming another region: two decisions claim one epoch, and the served one
        // stays until a higher epoch settles it.
        throw new FencedDecisionError(
          `the decision ${decision.region}@${decision.epoch} conflicts with the served ${served?.region}@${served?.epoch}; refused by fencing`,
        );
      }
      throw error;
    }
    this.#setServing(decision, false);
    this.#metrics?.applied.inc();
    this.#options.logger?.info(
      { node: node.name, region: decision.region, address: decision.address, epoch: decision.epoch },
      'following the control plane: new decision served',
    );
    try {
      await writeFileAtomic(this.#options.statePath, `${JSON.stringify({ version: 1, decision })}\n`, {
        mode: 0o600,
      });
    } catch (error) {
      // Serving is what matters; a restart without the file falls back to asking the nodes.
      this.#options.logger?.error(
        { err: causeOf(error), path: this.#options.statePath },
        'cannot keep the decision on disk',
      );
    }
  }

  #setServing(decision: FollowedDecision, restored: boolean): void {
    this.#serving = decision;
    this.#servingSince = this.#clock.now();
    this.#restored = restored;
    this.#metrics?.epoch.set(decision.epoch);
  }

  #contact(node: NodeLink): void {
    node.lastContactAt = this.#clock.now();
    node.lastError = null;
    if (node.answered) this.#metrics?.nodeEpoch.set({ node: node.name }, node.answered.epoch);
    if (node.link === 'unreachable')
      this.#options.logger?.info({ node: node.name, url: node.url }, 'the control node answers again');
    this.#setLink(node, 'connected');
  }

  #failed(node: NodeLink, error: unknown): void {
    const message = causeOf(error);
    this.#metrics?.failures.inc();
    node.lastError = message;
    // The node answered, and what it said cannot be served (refused by fencing, an HTTP error,
    // not a decision): it is reachable, and the health says what is wrong.
    if (!(error instanceof ControllerUnreachableError)) {
      node.lastContactAt = this.#clock.now();
      this.#setLink(node, 'connected');
      this.#options.logger?.warn(
        { node: node.name, url: node.url, err: message },
        'cannot follow the control node',
      );
      return;
    }
    if (node.link !== 'unreachable')
      this.#options.logger?.warn(
        { node: node.name, url: node.url, err: message },
        'the control node is unreachable',
      );
    this.#setLink(node, 'unreachable');
  }

  #setLink(node: NodeLink, link: ControllerLink): void {
    this.#metrics?.nodeConnected.set({ node: node.name }, link === 'connected' ? 1 : 0);
    if (node.link !== link) {
      node.link = link;
      node.since = this.#clock.now();
    }
    const links = this.#nodes.map((n) => n.link);
    const controller: ControllerLink = links.includes('connected')
      ? 'connected'
      : links.includes('connecting')
        ? 'connecting'
        : 'unreachable';
    this.#metrics?.connected.set(controller === 'connected' ? 1 : 0);
    if (controller === this.#controller) return;
    if (controller === 'unreachable')
      this.#options.logger?.warn(
        { nodes: this.#nodes.map((n) => n.name), serving: this.#serving },
        'no control node answers; serving the last decision',
      );
    else if (this.#controller === 'unreachable')
      this.#options.logger?.info({ node: node.name }, 'a control node answers again');
    this.#controller = controller;
    this.#since = this.#clock.now();
  }

  async #readFile(): Promise<FollowedDecision | undefined> {
    let text: string;
    try {
      text = await readFile(this.#options.statePath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.#options.logger?.warn({ err: causeOf(error) }, 'cannot read the kept decision; ignoring it');
      return undefined;
    }
    try {
      return fileSchema.parse(JSON.parse(text)).decision;
    } catch (error) {
      this.#options.logger?.warn(
        { err: causeOf(error), path: this.#options.statePath },
        'the kept decision is not valid; ignoring it',
      );
      return undefined;
    }
  }
}

function followerMetrics(registry: Registry): FollowerMetrics {
  const registers = [registry];
  return {
    connected: new Gauge({
      name: 'iotdr_dns_follower_connected',
      help: '1 while at least one control node answered its last request, else 0',
      registers,
    }),
    epoch: new Gauge({
      name: 'iotdr_dns_follower_epoch',
      help: 'Fencing epoch of the decision this DNS server answers (-1: none)',
      registers,
    }),
    applied: new Counter({
      name: 'iotdr_dns_follower_decisions_total',
      help: 'Decisions received from the control nodes and applied to the served records',
      registers,
    }),
    failures: new Counter({
      name: 'iotdr_dns_follower_request_failures_total',
      help: 'Requests to a control node that failed (unreachable, refused, fenced)',
      registers,
    }),
    nodeConnected: new Gauge({
      name: 'iotdr_dns_follower_node_connected',
      help: '1 while the control node answered its last request, else 0',
      labelNames: ['node'],
      registers,
    }),
    nodeEpoch: new Gauge({
      name: 'iotdr_dns_follower_node_epoch',
      help: 'Fencing epoch of the decision the control node last answered (-1: none yet)',
      labelNames: ['node'],
      registers,
    }),
  };
}

function sameDecision(a: FollowedDecision | null, b: FollowedDecision | null): boolean {
  return a !== null && b !== null && a.epoch === b.epoch && a.region === b.region && a.address === b.address;
}

function describeDecision(d: FollowedDecision): string {
  return `${d.region} (${d.address}) at epoch ${d.epoch}, decided ${iso(d.decidedAt)}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The node's decision has the served epoch and another region: kept out by fencing. */
class FencedDecisionError extends Error {}

/** No answer from a node: refused connection, reset, or no answer in time. */
class ControllerUnreachableError extends Error {}

function causeOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  const inner = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : undefined;
  return inner ? `${error.message} (${inner})` : error.message;
}

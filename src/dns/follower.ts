/**
 * A DNS server in another process (`iotdr dns`) follows the controller: it long-polls
 * GET /v1/failover/decision, hands every new decision to its provider (the built-in engine it
 * serves from) and keeps it in a file. When the controller is unreachable it keeps serving the
 * last decision, from that file after a restart too, and says so in its health; it never invents
 * one. A decision with a lower epoch than the one served is refused (fencing), and reported.
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
/** How long a request may take beyond its wait before the controller counts as unreachable, ms. */
export const DEFAULT_FOLLOW_SLACK_MS = 3000;
/** Backoff after a failed request: full jitter between 0 and min(cap, base × 2^attempt), ms. */
export const DEFAULT_FOLLOW_RETRY = { baseMs: 200, capMs: 5000 } as const;

const fileSchema = z.object({ version: z.literal(1), decision: followedDecisionSchema }).strict();

export type ControllerLink = 'connecting' | 'connected' | 'unreachable';

export interface FollowerStatus {
  readonly controlUrl: string;
  /** connecting: no answer yet since start; unreachable: the last request failed. */
  readonly controller: ControllerLink;
  /** When `controller` took its current value. */
  readonly since: number;
  readonly lastContactAt: number | null;
  readonly lastError: string | null;
  /** What the DNS answers now; null before the first decision (the names answer SERVFAIL). */
  readonly serving: FollowedDecision | null;
  /** When the served decision was applied here. */
  readonly servingSince: number | null;
  /** The served decision came from the file, and the controller has not confirmed it yet. */
  readonly restored: boolean;
}

export interface DnsFollowerOptions {
  /** Name of this server (its `dns.servers` label); the health response's serviceId. */
  readonly name: string;
  /** Base URL of `iotdr control`. */
  readonly controlUrl: string;
  /** A bearer token with the reader role (or more) on the control API, on plain loopback links. */
  readonly token?: string;
  /** The name server's site agent (mutual TLS): control knows it by its certificate. */
  readonly agent?: Agent;
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

export class DnsFollower {
  readonly #options: DnsFollowerOptions;
  readonly #clock: Clock;
  readonly #control: ApiClient;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #controller: ControllerLink = 'connecting';
  #since: number;
  #lastContactAt: number | null = null;
  #lastError: string | null = null;
  #serving: FollowedDecision | null = null;
  #servingSince: number | null = null;
  #restored = false;
  readonly #connected: Gauge | undefined;
  readonly #epoch: Gauge | undefined;
  readonly #applied: Counter | undefined;
  readonly #failures: Counter | undefined;

  constructor(options: DnsFollowerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#control = new ApiClient(
      'control',
      options.controlUrl.replace(/\/+$/, ''),
      options.agent === undefined ? options.token : undefined,
      options.agent,
    );
    this.#since = this.#clock.now();
    const registers = options.metrics ? [options.metrics] : undefined;
    if (registers) {
      this.#connected = new Gauge({
        name: 'iotdr_dns_follower_connected',
        help: '1 while the last request to the controller succeeded, else 0',
        registers,
      });
      this.#epoch = new Gauge({
        name: 'iotdr_dns_follower_epoch',
        help: 'Fencing epoch of the decision this DNS server answers (-1: none)',
        registers,
      });
      this.#applied = new Counter({
        name: 'iotdr_dns_follower_decisions_total',
        help: 'Decisions received from the controller and applied to the served records',
        registers,
      });
      this.#failures = new Counter({
        name: 'iotdr_dns_follower_request_failures_total',
        help: 'Requests to the controller that failed (unreachable, refused, stale epoch)',
        registers,
      });
      this.#connected.set(0);
      this.#epoch.set(-1);
    }
  }

  /**
   * Serves the decision kept in the file (if any) before returning, then follows the controller
   * in the background. A file that cannot be read or parsed is logged and ignored.
   */
  async start(): Promise<void> {
    if (this.#loop) return;
    const kept = await this.#readFile();
    if (kept) {
      await this.#options.provider.apply({ region: kept.region, address: kept.address, epoch: kept.epoch });
      this.#setServing(kept, true);
      this.#options.logger?.info(
        { region: kept.region, epoch: kept.epoch },
        'serving the last decision kept on disk until the controller answers',
      );
    }
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  status(): FollowerStatus {
    return {
      controlUrl: this.#options.controlUrl,
      controller: this.#controller,
      since: this.#since,
      lastContactAt: this.#lastContactAt,
      lastError: this.#lastError,
      serving: this.#serving,
      servingSince: this.#servingSince,
      restored: this.#restored,
    };
  }

  /**
   * The server's health (application/health+json): fail while it answers no decision; warn while
   * it serves one the controller cannot confirm (unreachable, or a refused stale epoch); pass else.
   */
  health(): HealthResponse {
    const now = new Date(this.#clock.now()).toISOString();
    const s = this.status();
    const served = s.serving;
    const describe = (d: FollowedDecision) =>
      `${d.region} (${d.address}) at epoch ${d.epoch}, decided ${new Date(d.decidedAt).toISOString()}`;
    const answers: CheckEntry = {
      componentId: 'answers',
      componentType: 'component',
      observedValue: served ? `${served.region}@${served.epoch}` : null,
      status: served ? 'pass' : 'fail',
      time: now,
      ...(served ? {} : { output: 'no decision yet: the fleet names answer SERVFAIL' }),
      critical: true,
    };
    const confirmed = s.controller === 'connected' && s.lastError === null;
    const link: CheckEntry = {
      componentId: 'controller',
      componentType: 'system',
      observedValue: s.lastContactAt === null ? null : Math.max(0, this.#clock.now() - s.lastContactAt),
      observedUnit: 'ms since last contact',
      status: confirmed ? 'pass' : 'warn',
      time: now,
      ...(confirmed
        ? {}
        : {
            output:
              s.controller === 'connected'
                ? `the controller at ${s.controlUrl} answers, but: ${s.lastError}`
                : `the controller at ${s.controlUrl} is ${s.controller} since ${new Date(s.since).toISOString()}${s.lastError ? ` (${s.lastError})` : ''}; ${served ? `serving the last decision: ${describe(served)}${s.restored ? ', restored from disk' : ''}` : 'no decision to serve'}`,
          }),
      critical: false,
    };
    const status: HealthStatus = !served ? 'fail' : confirmed ? 'pass' : 'warn';
    const outputs = [answers, link].flatMap((c) => (c.output ? [c.output] : []));
    return {
      status,
      version: this.#options.version ?? '0.0.0',
      releaseId: this.#options.version ?? '0.0.0',
      serviceId: this.#options.name,
      description: `iotdr DNS server ${this.#options.name}, following ${s.controlUrl}`,
      ...(outputs.length > 0 ? { output: outputs.join('; ') } : {}),
      checks: { 'dns:answers': [answers], 'control:reachability': [link] },
    };
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    const retry = this.#options.retry ?? DEFAULT_FOLLOW_RETRY;
    let failures = 0;
    // The first request answers at once, so the link is confirmed (or not) without waiting.
    let wait = 0;
    while (!signal.aborted) {
      try {
        const decision = await this.#fetch(this.#restored ? undefined : this.#serving?.epoch, wait, signal);
        // The controller answered: reachable, whatever becomes of its decision here.
        this.#contact();
        await this.#apply(decision);
        failures = 0;
        wait = this.#options.waitMs ?? DEFAULT_FOLLOW_WAIT_MS;
      } catch (error) {
        if (signal.aborted) break;
        failures += 1;
        this.#failed(error);
        await abortableSleep(backoffMs(failures, retry.baseMs, retry.capMs, Math.random), signal);
        wait = 0;
      }
    }
  }

  async #fetch(after: number | undefined, waitMs: number, signal: AbortSignal): Promise<FollowedDecision> {
    try {
      return await this.#control.request(DECISION_ROUTE, {
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

  async #apply(decision: FollowedDecision): Promise<void> {
    const served = this.#serving;
    const same =
      served !== null &&
      served.epoch === decision.epoch &&
      served.region === decision.region &&
      served.address === decision.address;
    if (same) {
      if (this.#restored) {
        this.#restored = false;
        this.#lastError = null;
      }
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
        // The controller is behind what this server answers (a controller restored from an old
        // backup, or another one): keep serving, say so, and ask again later.
        throw new FencedDecisionError(
          `the controller's decision ${decision.region}@${decision.epoch} is older than the served ${served?.region}@${served?.epoch}; refused by fencing`,
        );
      }
      throw error;
    }
    this.#setServing(decision, false);
    this.#applied?.inc();
    this.#options.logger?.info(
      { region: decision.region, address: decision.address, epoch: decision.epoch },
      'following the controller: new decision served',
    );
    try {
      await writeFileAtomic(this.#options.statePath, `${JSON.stringify({ version: 1, decision })}\n`, {
        mode: 0o600,
      });
    } catch (error) {
      // Serving is what matters; a restart without the file falls back to asking the controller.
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
    this.#epoch?.set(decision.epoch);
  }

  #contact(): void {
    this.#lastContactAt = this.#clock.now();
    this.#lastError = null;
    this.#connected?.set(1);
    if (this.#controller !== 'connected') {
      if (this.#controller === 'unreachable')
        this.#options.logger?.info({ controlUrl: this.#options.controlUrl }, 'the controller answers again');
      this.#controller = 'connected';
      this.#since = this.#clock.now();
    }
  }

  #failed(error: unknown): void {
    const message = causeOf(error);
    this.#failures?.inc();
    this.#lastError = message;
    // The controller answered, and what it said cannot be served (refused by fencing, an HTTP
    // error, not a decision): it is reachable, and the health says what is wrong.
    if (!(error instanceof ControllerUnreachableError)) {
      this.#lastContactAt = this.#clock.now();
      if (this.#controller !== 'connected') {
        this.#controller = 'connected';
        this.#since = this.#clock.now();
      }
      this.#connected?.set(1);
      this.#options.logger?.warn(
        { controlUrl: this.#options.controlUrl, err: message },
        'cannot follow the controller',
      );
      return;
    }
    this.#connected?.set(0);
    if (this.#controller !== 'unreachable') {
      this.#options.logger?.warn(
        { controlUrl: this.#options.controlUrl, err: message, serving: this.#serving },
        'the controller is unreachable; serving the last decision',
      );
      this.#controller = 'unreachable';
      this.#since = this.#clock.now();
    }
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

/** The controller's decision has a lower epoch than the one served: kept out by fencing. */
class FencedDecisionError extends Error {}

/** No answer from the controller: refused connection, reset, or no answer in time. */
class ControllerUnreachableError extends Error {}

function causeOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  const inner = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : undefined;
  return inner ? `${error.message} (${inner})` : error.message;
}

import type { Agent } from 'node:https';
import type { Logger } from 'pino';
import { BROKER_ROUTES } from '../broker/index.js';
import { type Clock, systemClock } from '../common/index.js';
import { ApiClient, CallError, type CallOptions } from '../http/index.js';
import { DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_DISCONNECT_ON_FAILOVER, type DisconnectMode } from './config.js';
import type { StepRecorder, SwitchActions } from './controller.js';
import { type Decision, type DecisionSink, type SwitchEvent, systemTimers, type Timers } from './types.js';

/** A receiver of switch events (the role of the reference design's SNS notification). */
export interface Webhook {
  url: string;
  /** Extra request headers, e.g. a shared secret. Never logged. */
  headers?: Record<string, string>;
}

export interface RetryPolicy {
  /** Attempts in all, first included. Default 5. */
  attempts: number;
  /** Delay before the second attempt, doubled each time, in ms. Default 200. */
  baseMs: number;
  /** Longest delay, in ms. Default 5,000. */
  maxMs: number;
}

export const DEFAULT_WEBHOOK_RETRY: RetryPolicy = { attempts: 5, baseMs: 200, maxMs: 5000 };

export interface SwitchExecutorOptions {
  /**
   * Every region and its API URL: notices go to each, the disconnect to the old one. Over mutual
   * TLS each has control's site agent for it (the region knows control by its certificate).
   */
  regions: { name: string; url: string; agent?: Agent }[];
  /** Admin token of the regions' APIs, on plain loopback links (notices need the admin role). */
  adminToken?: string;
  /** Followers of the decision: the DNS provider. */
  sinks?: DecisionSink[];
  webhooks?: Webhook[];
  /** Default 'when-reachable': disconnect the devices still on the old region when it answers. */
  disconnectOnFailover?: DisconnectMode;
  /** Time each request to a region or webhook may take, in ms. Default 1,000. */
  requestTimeoutMs?: number;
  webhookRetry?: Partial<RetryPolicy>;
  clock?: Clock;
  timers?: Timers;
  logger?: Logger;
}

type Outcome =
  | { ok: true; status: number; at: number; attempts?: number; disconnected?: number }
  | { ok: false; error: string; at: number; attempts?: number };

/**
 * Runs what a switch sets off, in the order devices need it: DNS first (so that devices moved by
 * the notice or the disconnect resolve the new region), then the failover notice on every region
 * that answers and the webhooks, then the disconnect of the old region's devices. Each step
 * records its completion time and outcome on the switch's event.
 */
export class SwitchExecutor implements SwitchActions {
  /** Each region's API, called with the admin token. */
  readonly #regions: { name: string; api: ApiClient }[];
  readonly #sinks: DecisionSink[];
  readonly #webhooks: Webhook[];
  readonly #disconnect: DisconnectMode;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #logger: Logger | undefined;

  constructor(options: SwitchExecutorOptions) {
    this.#regions = options.regions.map((r) => ({
      name: r.name,
      api: new ApiClient(
        r.name,
        r.url.replace(/\/+$/, ''),
        r.agent === undefined ? options.adminToken : undefined,
        r.agent,
      ),
    }));
    this.#sinks = options.sinks ?? [];
    this.#webhooks = options.webhooks ?? [];
    this.#disconnect = options.disconnectOnFailover ?? DEFAULT_DISCONNECT_ON_FAILOVER;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
    this.#retry = { ...DEFAULT_WEBHOOK_RETRY, ...options.webhookRetry };
    this.#clock = options.clock ?? systemClock;
    this.#timers = options.timers ?? systemTimers;
    this.#logger = options.logger;
  }

  async announce(decision: Decision): Promise<void> {
    await this.#applySinks(decision);
  }

  async #applySinks(decision: Decision): Promise<Record<string, string>> {
    const results = await Promise.allSettled(this.#sinks.map((sink) => sink.apply(decision)));
    const out: Record<string, string> = {};
    results.forEach((r, i) => {
      out[this.#sinks[i]?.name ?? String(i)] =
        r.status === 'fulfilled' ? 'ok' : String((r.reason as Error)?.message ?? r.reason);
      if (r.status === 'rejected')
        this.#logger?.error({ err: r.reason }, 'a DNS provider did not take the decision');
    });
    return out;
  }

  async execute(event: SwitchEvent, record: StepRecorder): Promise<void> {
    const decision: Decision = {
      activeRegion: event.to,
      epoch: event.epoch,
      at: event.at,
      eventId: event.id,
    };
    const dns = await this.#applySinks(decision);
    record('dnsUpdated', { sinks: dns });

    const notice = { activeRegion: event.to, epoch: event.epoch, at: new Date(event.at).toISOString() };
    const notices = (async () => {
      const outcomes = await Promise.all(
        this.#regions.map(
          async (r) =>
            [
              r.name,
              await this.#callRegion((o) =>
                r.api.requestAny(BROKER_ROUTES.failoverNotice, { body: notice, ...o }),
              ),
            ] as const,
        ),
      );
      record('noticesPublished', Object.fromEntries(outcomes));
    })();
    const webhooks = (async () => {
      if (this.#webhooks.length === 0) return;
      const outcomes = await Promise.all(this.#webhooks.map((w) => this.#callWebhook(w, event)));
      record('webhooksCalled', outcomes);
    })();
    const disconnect = (async () => {
      await notices;
      const old = this.#regions.find((r) => r.name === event.from);
      if (this.#disconnect === 'never' || !old || old.name === event.to) return;
      const outcome = await this.#callRegion(
        (o) => old.api.requestAny(BROKER_ROUTES.disconnect, { body: { all: true }, ...o }),
        (answer) => (answer.status === 200 ? { disconnected: answer.body.disconnected } : {}),
      );
      record('disconnectsRequested', { region: old.name, ...outcome });
    })();
    await Promise.all([notices, webhooks, disconnect]);
  }

  async #callWebhook(webhook: Webhook, event: SwitchEvent): Promise<Outcome & { url: string }> {
    let last: Outcome = { ok: false, error: 'not called', at: this.#clock.now() };
    for (let attempt = 1; attempt <= this.#retry.attempts; attempt++) {
      last = await this.#post(webhook.url, event, webhook.headers);
      if (last.ok) return { ...last, attempts: attempt, url: webhook.url };
      if (attempt < this.#retry.attempts) {
        const delay = Math.min(this.#retry.maxMs, this.#retry.baseMs * 2 ** (attempt - 1));
        await new Promise<void>((resolve) => this.#timers.setTimeout(resolve, delay));
      }
    }
    this.#logger?.error(
      { url: webhook.url, error: 'error' in last ? last.error : undefined },
      'webhook failed',
    );
    return { ...last, attempts: this.#retry.attempts, url: webhook.url };
  }

  /**
   * One call of a region's route under the timeout (the injected timers'); a 2xx is ok, with what
   * `extra` reads of it. Never throws.
   */
  async #callRegion<A extends { status: number }>(
    call: (options: CallOptions) => Promise<A>,
    extra: (answer: A) => { disconnected?: number } = () => ({}),
  ): Promise<Outcome> {
    const controller = new AbortController();
    const timer = this.#timers.setTimeout(() => controller.abort(), this.#timeoutMs);
    try {
      const answer = await call({ signal: controller.signal, timeoutMs: this.#timeoutMs });
      const at = this.#clock.now();
      if (answer.status < 200 || answer.status >= 300)
        return { ok: false, error: `answered ${answer.status}`, at };
      return { ok: true, status: answer.status, at, ...extra(answer) };
    } catch (error) {
      const at = this.#clock.now();
      if (controller.signal.aborted)
        return { ok: false, error: `no answer within ${this.#timeoutMs} ms`, at };
      if (!(error instanceof CallError)) return { ok: false, error: (error as Error).message, at };
      const failure = error.failure;
      switch (failure.type) {
        case 'timeout':
          return { ok: false, error: `no answer within ${failure.timeoutMs} ms`, at };
        case 'unreachable':
          return { ok: false, error: failure.cause, at };
        case 'refused':
          return { ok: false, error: `answered ${failure.status}`, at };
        case 'unexpected':
          return {
            ok: false,
            error: `answered ${failure.status}, not as this version does: ${failure.why}`,
            at,
          };
      }
    } finally {
      this.#timers.clearTimeout(timer);
    }
  }

  /**
   * POST the event to a webhook under the timeout; a 2xx is ok. Never throws. A webhook is the
   * operator's own receiver, not an iotdr route: no contract describes its answer.
   */
  async #post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Outcome> {
    const controller = new AbortController();
    const timer = this.#timers.setTimeout(() => controller.abort(), this.#timeoutMs);
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: controller.signal,
        redirect: 'manual',
      });
      // Read to the end, so the connection can serve the next call.
      await res.text();
      const at = this.#clock.now();
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, at };
      return { ok: false, error: `answered ${res.status}`, at };
    } catch (error) {
      const at = this.#clock.now();
      if (controller.signal.aborted)
        return { ok: false, error: `no answer within ${this.#timeoutMs} ms`, at };
      const cause = (error as { cause?: { code?: string } }).cause;
      return { ok: false, error: cause?.code ?? (error as Error).message, at };
    } finally {
      this.#timers.clearTimeout(timer);
    }
  }
}

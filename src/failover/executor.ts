import type { Agent } from 'node:https';
import type { Logger } from 'pino';
import { BROKER_ROUTES } from '../broker/index.js';
import { type Clock, systemClock } from '../common/index.js';
import { ApiClient, CallError, type CallOptions, type SuccessOf } from '../http/index.js';
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
   * Every region and its API URL: notices go to each, the disconnect to the old one; to a region
   * that does not answer, through another region that did (its relay route). Over mutual TLS each
   * has control's site agent for it (the region knows control by its certificate).
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
  | { ok: false; error: string; at: number; attempts?: number; status?: number };

/** How a region was reached: directly, or through the named peer region's relay. */
type Via = 'direct' | (string & {});

/**
 * A region's notice or disconnect as recorded on the switch: how it went and `via` which way; when
 * no way worked, the direct call's failure with `relays`, each peer's.
 */
type Reached = Outcome & { via: Via; relays?: (Outcome & { via: Via })[] };

type RegionApi = { name: string; api: ApiClient };

/** What a peer's relay answers of one call to the region. */
type RelayOutcome = SuccessOf<typeof BROKER_ROUTES.failoverRelay>['notice'];

/** A failure another way may mend: no answer, or the region's server failing (5xx). */
function worthRelaying(outcome: Outcome): boolean {
  return !outcome.ok && (outcome.status === undefined || outcome.status >= 500);
}

/**
 * Runs what a switch sets off, in the order devices need it: DNS first (so that devices moved by
 * the notice or the disconnect resolve the new region), then the failover notice on every region
 * and the webhooks, then the disconnect of the old region's devices. A region control cannot reach
 * (no answer, or a 5xx) may still reach its peers over the replication links: its notice and
 * disconnect then go through a region that took its own notice directly. Each step records its
 * completion time and outcome on the switch's event, with the way each region was reached.
 */
export class SwitchExecutor implements SwitchActions {
  /** Each region's API, called with the admin token. */
  readonly #regions: RegionApi[];
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
      const direct = await Promise.all(
        this.#regions.map(async (r) => {
          const outcome = await this.#callRegion((o) =>
            r.api.requestAny(BROKER_ROUTES.failoverNotice, { body: notice, ...o }),
          );
          return { region: r, first: { ...outcome, via: 'direct' } satisfies Reached };
        }),
      );
      // Only a region that took its own notice directly relays: it is known to answer.
      const relays = direct.filter((d) => d.first.ok).map((d) => d.region);
      const reached = await Promise.all(
        direct.map(
          async ({ region, first }) =>
            [
              region.name,
              await this.#reach(
                first,
                relays.filter((p) => p.name !== region.name),
                (peer) => this.#relayThrough(peer, region.name, { notice }),
              ),
            ] as const,
        ),
      );
      record('noticesPublished', Object.fromEntries(reached));
      return { reached: new Map(reached), relays };
    })();
    const webhooks = (async () => {
      if (this.#webhooks.length === 0) return;
      const outcomes = await Promise.all(this.#webhooks.map((w) => this.#callWebhook(w, event)));
      record('webhooksCalled', outcomes);
    })();
    const disconnect = (async () => {
      const { reached, relays } = await notices;
      const old = this.#regions.find((r) => r.name === event.from);
      if (this.#disconnect === 'never' || !old || old.name === event.to) return;
      const direct = async (): Promise<Reached> => ({
        ...(await this.#callRegion(
          (o) => old.api.requestAny(BROKER_ROUTES.disconnect, { body: { all: true }, ...o }),
          (answer) => (answer.status === 200 ? { disconnected: answer.body.disconnected } : {}),
        )),
        via: 'direct',
      });
      const peers = relays.filter((p) => p.name !== old.name);
      const relayed = (peer: RegionApi) =>
        this.#relayThrough(peer, old.name, { notice, disconnect: { all: true } });
      // The way the old region's notice went first: a peer that relayed it, else the direct call.
      const noticeVia = reached.get(old.name)?.via;
      const through = peers.find((p) => p.name === noticeVia);
      const outcome =
        through === undefined
          ? await this.#reach(await direct(), peers, relayed)
          : await this.#reach(
              { ...(await relayed(through)), via: through.name },
              peers.filter((p) => p !== through),
              relayed,
              direct,
            );
      record('disconnectsRequested', { region: old.name, ...outcome });
    })();
    await Promise.all([notices, webhooks, disconnect]);
  }

  /**
   * Tries the other ways after `first`, each peer's relay in turn (then `direct`, when given),
   * until one reaches the region or the region answers for itself (a refusal is not mended by
   * another way). When none does, the direct call's failure, with every other way's in `relays`.
   */
  async #reach(
    first: Reached,
    peers: RegionApi[],
    relayed: (peer: RegionApi) => Promise<Outcome>,
    direct?: () => Promise<Reached>,
  ): Promise<Reached> {
    if (!worthRelaying(first)) return first;
    const failed: Reached[] = [first];
    const ways: (() => Promise<Reached>)[] = [
      ...peers.map((p) => async () => ({ ...(await relayed(p)), via: p.name })),
      ...(direct === undefined ? [] : [direct]),
    ];
    for (const way of ways) {
      const outcome = await way();
      if (!worthRelaying(outcome)) return outcome;
      failed.push(outcome);
    }
    const head = failed.find((f) => f.via === 'direct') ?? first;
    return { ...head, relays: failed.filter((f) => f !== head) };
  }

  /**
   * Has `peer` relay the notice (and the disconnect) to `region`: the outcome is the region's own
   * answer through the peer, with a status only when the region answered. A peer that fails or
   * refuses the relay leaves the region unreached (no status), so the next way is tried.
   */
  async #relayThrough(
    peer: RegionApi,
    region: string,
    body: { notice: { activeRegion: string; epoch: number; at: string }; disconnect?: { all: true } },
  ): Promise<Outcome> {
    let answered: { notice: RelayOutcome; disconnect?: RelayOutcome } | undefined;
    // The peer waits up to the timeout for each of its calls to the region: give it the time.
    const calls = body.disconnect === undefined ? 1 : 2;
    const outcome = await this.#callRegion(
      (o) =>
        peer.api.requestAny(BROKER_ROUTES.failoverRelay, {
          body: { region, ...body, timeoutMs: this.#timeoutMs },
          ...o,
        }),
      (answer) => {
        if (answer.status === 200) answered = answer.body;
        return {};
      },
      (calls + 1) * this.#timeoutMs,
    );
    const at = outcome.at;
    if (!outcome.ok || answered === undefined)
      return { ok: false, error: `relay by ${peer.name}: ${outcome.ok ? 'no answer' : outcome.error}`, at };
    const { notice, disconnect } = answered;
    const last = body.disconnect === undefined || !notice.ok ? notice : disconnect;
    if (last === undefined) return { ok: false, error: `relay by ${peer.name}: no disconnect answered`, at };
    if (last.ok)
      return {
        ok: true,
        status: last.status,
        at,
        ...(last.disconnected === undefined ? {} : { disconnected: last.disconnected }),
      };
    return {
      ok: false,
      error: last.error,
      at,
      ...(last.status === undefined ? {} : { status: last.status }),
    };
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
    timeoutMs = this.#timeoutMs,
  ): Promise<Outcome> {
    const controller = new AbortController();
    const timer = this.#timers.setTimeout(() => controller.abort(), timeoutMs);
    try {
      const answer = await call({ signal: controller.signal, timeoutMs });
      const at = this.#clock.now();
      if (answer.status < 200 || answer.status >= 300)
        return { ok: false, error: `answered ${answer.status}`, at, status: answer.status };
      return { ok: true, status: answer.status, at, ...extra(answer) };
    } catch (error) {
      const at = this.#clock.now();
      if (controller.signal.aborted) return { ok: false, error: `no answer within ${timeoutMs} ms`, at };
      if (!(error instanceof CallError)) return { ok: false, error: (error as Error).message, at };
      const failure = error.failure;
      switch (failure.type) {
        case 'timeout':
          return { ok: false, error: `no answer within ${failure.timeoutMs} ms`, at };
        case 'unreachable':
          return { ok: false, error: failure.cause, at };
        case 'refused':
          return { ok: false, error: `answered ${failure.status}`, at, status: failure.status };
        case 'unexpected':
          return {
            ok: false,
            error: `answered ${failure.status}, not as this version does: ${failure.why}`,
            at,
            status: failure.status,
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

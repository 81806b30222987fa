import { createHash } from 'node:crypto';
import type { Registry } from 'prom-client';
import { type Clock, type Logger, systemClock, uuidv7 } from '../common/index.js';
import { type EventBus, type EventPayload, encodePayload, parseJson } from '../events/index.js';
import type { RegistryService } from '../registry/index.js';
import type { RuleHttpConfig } from './config.js';
import type { DeadLetterStore } from './dead-letters.js';
import {
  type Backoff,
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_MAX_MS,
  DEFAULT_HTTP_MAX_ATTEMPTS,
  DEFAULT_HTTP_TIMEOUT_MS,
  type Delivery,
  deliver,
} from './deliver.js';
import { type Egress, egress } from './egress.js';
import { republishTopic, topicMatches } from './filter.js';
import { type RuleMetrics, ruleMetrics } from './metrics.js';
import { type RuleAction, type RuleDefinition, TOPIC_RULE_KIND } from './model.js';
import { isObject, selectFields } from './select.js';
import { type ApiRule, parseRuleDoc, RuleStore } from './store.js';
import { type InboundMessage, type PublishFn, realSleep, type Sleep } from './types.js';

/** How many republishes deep a chain of rules may go before the engine stops it. */
export const DEFAULT_MAX_REPUBLISH_DEPTH = 8;
/** HTTP deliveries in progress at most; past it a delivery is dead-lettered at once. */
export const DEFAULT_MAX_DELIVERIES_IN_FLIGHT = 1000;
/** How long the engine remembers its own republishes to recognise them coming back, in ms. */
const REPUBLISH_MEMORY_MS = 30_000;

export interface RuleEngineOptions {
  region: string;
  bus: EventBus;
  /** Publishes through the region's broker (republish action). */
  publish: PublishFn;
  deadLetters: DeadLetterStore;
  /** Rules of the configuration (region-local, read-only); see parseRuleDefinitions. */
  rules?: readonly RuleDefinition[];
  /** The registry, for API rules (kind topic-rule). Without it only config rules run. */
  service?: RegistryService;
  metrics?: Registry;
  logger?: Logger;
  clock?: Clock;
  sleep?: Sleep;
  /**
   * Where HTTP actions may connect: addresses that are not globally reachable (loopback,
   * link-local, private…) only inside `allowedNetworks`. Default: none of them.
   */
  http?: RuleHttpConfig;
  /** Backoff between HTTP attempts (default base 500 ms, max 30000 ms, full jitter). */
  backoff?: Partial<Backoff>;
  /** Default 8. */
  maxRepublishDepth?: number;
  /** Default 1000. */
  maxDeliveriesInFlight?: number;
}

/**
 * Which of a matched rule's actions `handle` runs: all of them, only the appends to the event bus
 * (a broker node on JetStream appends itself), or all but those (the hub, for a message whose
 * appends a node already made).
 */
export type RuleActionScope = 'all' | 'bus' | 'not-bus';

export interface HandleOptions {
  /** Default 'all'. */
  actions?: RuleActionScope;
  /**
   * The id another process gave this message's events (a node that appended them), used when the
   * message carries no `messageId`, so every action names the same event.
   */
  eventId?: string;
}

export type RuleView = RuleDefinition &
  ({ source: 'config' } | { source: 'api'; version: number; createdAt: string; updatedAt: string });

export interface HandleResult {
  /** Rules that matched, in evaluation order. */
  matched: string[];
  /** Actions that failed now (HTTP deliveries continue in the background and are not counted). */
  failures: number;
  /** Of those, appends to the event bus: the message is not durably taken, so it must not be acknowledged. */
  busFailures: number;
  /** The message's event id, once a matched rule needed one. */
  eventId?: string;
  /** A matched rule has a republish or HTTP action, whether or not this call ran it. */
  beyondBus: boolean;
}

type Data = { json: true; value: unknown; bytes: Buffer } | { json: false; bytes: Buffer };

function inScope(action: RuleAction, scope: RuleActionScope): boolean {
  if (scope === 'all') return true;
  return (action.type === 'bus') === (scope === 'bus');
}

/**
 * The region's rules: every message the broker hands to `handle` is matched against the enabled
 * rules (config rules, then API rules, each by name), and each match runs its actions in order.
 * `handle` resolves once the bus appends are committed and the republishes handed to the broker,
 * so a broker that waits for it before PUBACK acknowledges only what is on the bus. HTTP actions
 * run in the background with retries and end in a dead letter when they keep failing. A broker
 * node on JetStream runs only the bus appends (`actions: 'bus'`) and the hub the rest.
 */
export class RuleEngine {
  readonly store: RuleStore | undefined;
  readonly deadLetters: DeadLetterStore;
  readonly #o: RuleEngineOptions;
  readonly #config = new Map<string, RuleDefinition>();
  readonly #api = new Map<string, ApiRule>();
  /** Version at which an API rule was deleted, so an older read does not bring it back. */
  readonly #apiDeleted = new Map<string, number>();
  #active: RuleDefinition[] = [];
  readonly #metrics: RuleMetrics | undefined;
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #egress: Egress;
  readonly #stopping = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #republished = new Map<string, { depth: number; until: number }>();
  #unsubscribe: () => void = () => {};

  constructor(options: RuleEngineOptions) {
    this.#o = options;
    this.deadLetters = options.deadLetters;
    this.#clock = options.clock ?? systemClock;
    this.#backoff = {
      baseMs: options.backoff?.baseMs ?? DEFAULT_BACKOFF_BASE_MS,
      maxMs: options.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS,
      ...(options.backoff?.random ? { random: options.backoff.random } : {}),
    };
    this.#egress = egress(options.http?.allowedNetworks ?? []);
    for (const rule of options.rules ?? []) this.#config.set(rule.name, rule);
    this.store = options.service ? new RuleStore(options.service, this.#config.keys()) : undefined;
    this.#metrics = options.metrics ? ruleMetrics(options.metrics) : undefined;
    this.#metrics?.deadLettersStored.set(options.deadLetters.count());
    this.#refresh();
  }

  /** Loads the API rules and follows their changes (local writes and replication alike). */
  async start(): Promise<void> {
    const { service } = this.#o;
    if (!service || !this.store) return;
    // Subscribe first: a change committed while the list loads is not missed.
    this.#unsubscribe = service.onCommit((changes) => {
      let touched = false;
      for (const c of changes) {
        if (c.kind !== TOPIC_RULE_KIND) continue;
        touched = true;
        if (c.op === 'delete') this.#forget(c.key, c.version);
        else {
          const rule = parseRuleDoc(c.after, c.version);
          if (rule) this.#learn(rule);
        }
      }
      if (touched) this.#refresh();
    });
    await this.store.init();
    for (const rule of await this.store.list()) this.#learn(rule);
    this.#refresh();
  }

  /**
   * Reads the API rules again, for a process that does not see the registry's commits (a broker
   * node reading the region's store): a rule no longer listed is gone.
   */
  async reload(): Promise<void> {
    if (!this.store) return;
    const listed = await this.store.list();
    const names = new Set(listed.map((r) => r.name));
    let changed = false;
    for (const rule of listed) changed = this.#learn(rule) || changed;
    for (const [name, rule] of this.#api)
      if (!names.has(name)) changed = this.#forget(name, rule.version) || changed;
    if (changed) this.#refresh();
  }

  #learn(rule: ApiRule): boolean {
    const known = this.#api.get(rule.name)?.version ?? this.#apiDeleted.get(rule.name) ?? 0;
    if (rule.version <= known) return false;
    this.#api.set(rule.name, rule);
    this.#apiDeleted.delete(rule.name);
    return true;
  }

  #forget(name: string, version: number): boolean {
    const known = this.#api.get(name)?.version ?? 0;
    if (version < known) return false;
    this.#api.delete(name);
    this.#apiDeleted.set(name, version);
    return true;
  }

  #refresh(): void {
    const byName = (a: RuleDefinition, b: RuleDefinition) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const config = [...this.#config.values()].sort(byName);
    const api: RuleDefinition[] = [];
    for (const rule of [...this.#api.values()].sort(byName)) {
      // A rule made in a region whose configuration lacks this name: the local config rule wins.
      if (this.#config.has(rule.name)) {
        this.#o.logger?.warn({ rule: rule.name }, 'API rule ignored: a config rule has its name');
        continue;
      }
      api.push(rule);
    }
    this.#active = [...config, ...api];
  }

  /** Every rule the engine knows (config first), enabled or not. */
  listRules(): RuleView[] {
    return this.#active.map((r) => this.#view(r));
  }

  getRule(name: string): RuleView | undefined {
    const rule = this.#active.find((r) => r.name === name);
    return rule ? this.#view(rule) : undefined;
  }

  #view(rule: RuleDefinition): RuleView {
    if (this.#config.has(rule.name)) return { ...rule, source: 'config' };
    const { version, createdAt, updatedAt, ...definition } = rule as ApiRule;
    return { ...definition, source: 'api', version, createdAt, updatedAt };
  }

  /**
   * Runs the actions of every enabled rule matching the message (those of `options.actions`).
   * With 'not-bus' the message was counted where its appends were made, so matches and its
   * payload's errors are not counted again.
   */
  async handle(message: InboundMessage, options: HandleOptions = {}): Promise<HandleResult> {
    const scope = options.actions ?? 'all';
    const counts = scope !== 'not-bus';
    const result: HandleResult = { matched: [], failures: 0, busFailures: 0, beyondBus: false };
    const depth = this.#depthOf(message);
    let id: string | undefined;
    let parsed: ReturnType<typeof parseJson> | undefined;
    for (const rule of this.#active) {
      if (!rule.enabled || !topicMatches(rule.topicFilter, message.topic)) continue;
      result.matched.push(rule.name);
      if (rule.actions.some((a) => a.type !== 'bus')) result.beyondBus = true;
      if (counts) this.#metrics?.matches.inc({ rule: rule.name });
      parsed ??= parseJson(message.payload);
      const data = this.#data(rule, message, parsed, counts);
      if (!data) continue;
      // One id per message: the device's, the one the appending process made, or one made here,
      // shared by every rule it matches; the stream drops a second append of the same id.
      id ??= message.messageId ?? options.eventId ?? uuidv7(message.receivedAt);
      result.eventId = id;
      for (const action of rule.actions) {
        if (!inScope(action, scope)) continue;
        try {
          await this.#run(rule, action, message, data, id, depth);
        } catch (error) {
          result.failures++;
          if (action.type === 'bus') result.busFailures++;
          this.#metrics?.actionFailures.inc({ rule: rule.name, action: action.type });
          this.#o.logger?.error({ err: error, rule: rule.name, action: action.type }, 'rule action failed');
        }
      }
    }
    return result;
  }

  /** What the rule's actions get: the selected fields as JSON, or the payload as it came. */
  #data(
    rule: RuleDefinition,
    message: InboundMessage,
    parsed: ReturnType<typeof parseJson>,
    counts: boolean,
  ): Data | undefined {
    if (rule.select === undefined) {
      return parsed.ok
        ? { json: true, value: parsed.value, bytes: message.payload }
        : { json: false, bytes: message.payload };
    }
    if (!parsed.ok || !isObject(parsed.value)) {
      if (counts) this.#ruleError(rule.name, 'payload-not-json-object', message.topic);
      return undefined;
    }
    const value = selectFields(parsed.value, rule.select);
    return { json: true, value, bytes: Buffer.from(JSON.stringify(value), 'utf8') };
  }

  #ruleError(rule: string, reason: string, topic: string): void {
    this.#metrics?.errors.inc({ rule, reason });
    this.#o.logger?.warn({ rule, reason, topic }, 'rule could not process a message');
  }

  async #run(
    rule: RuleDefinition,
    action: RuleAction,
    message: InboundMessage,
    data: Data,
    id: string,
    depth: number,
  ): Promise<void> {
    switch (action.type) {
      case 'bus': {
        const payload: EventPayload = data.json
          ? { type: 'json', value: data.value }
          : encodePayload(data.bytes);
        await this.#o.bus.append({
          id,
          time: message.receivedAt,
          source: { type: 'rule', rule: rule.name },
          topic: message.topic,
          ...(message.thingName === undefined ? {} : { thingName: message.thingName }),
          clientId: message.clientId,
          payload,
        });
        return;
      }
      case 'republish': {
        const topic = republishTopic(action.topic, message.thingName);
        if (topic === undefined) return this.#ruleError(rule.name, 'no-thing-name', message.topic);
        const max = this.#o.maxRepublishDepth ?? DEFAULT_MAX_REPUBLISH_DEPTH;
        if (depth >= max) return this.#ruleError(rule.name, 'republish-depth', message.topic);
        this.#remember(topic, data.bytes, depth + 1);
        await this.#o.publish(topic, data.bytes, { qos: action.qos ?? 0, retain: false });
        return;
      }
      case 'http':
        this.#startDelivery(rule.name, id, {
          url: action.url,
          body: data.bytes,
          contentType: data.json ? 'application/json' : 'application/octet-stream',
          headers: { ...action.headers, 'x-iotdr-event-id': id, 'x-iotdr-rule': rule.name },
          timeoutMs: action.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
          maxAttempts: action.maxAttempts ?? DEFAULT_HTTP_MAX_ATTEMPTS,
        });
        return;
    }
  }

  // Republish loops across rules (A → B → A) cannot all be refused when written, so the engine
  // recognises its own republishes when the broker hands them back, and counts how deep they go.
  #key(topic: string, payload: Buffer): string {
    return `${topic}\n${createHash('sha256').update(payload).digest('base64')}`;
  }

  #remember(topic: string, payload: Buffer, depth: number): void {
    const now = this.#clock.now();
    if (this.#republished.size > 10_000) {
      for (const [k, v] of this.#republished) if (v.until < now) this.#republished.delete(k);
    }
    this.#republished.set(this.#key(topic, payload), { depth, until: now + REPUBLISH_MEMORY_MS });
  }

  #depthOf(message: InboundMessage): number {
    if (this.#republished.size === 0) return 0;
    const key = this.#key(message.topic, message.payload);
    const entry = this.#republished.get(key);
    if (!entry || entry.until < this.#clock.now()) return 0;
    return entry.depth;
  }

  #startDelivery(rule: string, eventId: string, delivery: Delivery): void {
    const max = this.#o.maxDeliveriesInFlight ?? DEFAULT_MAX_DELIVERIES_IN_FLIGHT;
    if (this.#inFlight.size >= max || this.#stopping.signal.aborted) {
      this.#deadLetter(rule, eventId, delivery, {
        attempts: 0,
        lastError: this.#stopping.signal.aborted
          ? 'region shutting down'
          : `more than ${max} deliveries in flight`,
      });
      return;
    }
    const task = (async () => {
      const outcome = await deliver(delivery, {
        sleep: this.#o.sleep ?? realSleep,
        backoff: this.#backoff,
        signal: this.#stopping.signal,
        egress: this.#egress,
      });
      if (!outcome.ok) {
        this.#metrics?.actionFailures.inc({ rule, action: 'http' });
        if (outcome.refused) this.#metrics?.httpRefused.inc({ rule });
        this.#deadLetter(rule, eventId, delivery, {
          attempts: outcome.attempts,
          lastError: outcome.lastError ?? '',
        });
      }
    })()
      .catch((error: unknown) => this.#o.logger?.error({ err: error, rule }, 'HTTP delivery failed'))
      .finally(() => {
        this.#inFlight.delete(task);
        this.#metrics?.deliveriesInFlight.set(this.#inFlight.size);
      });
    this.#inFlight.add(task);
    this.#metrics?.deliveriesInFlight.set(this.#inFlight.size);
  }

  #deadLetter(
    rule: string,
    eventId: string,
    d: Delivery,
    outcome: { attempts: number; lastError: string },
  ): void {
    const at = this.#clock.now();
    this.deadLetters.add({
      id: uuidv7(at),
      rule,
      eventId,
      url: d.url,
      attempts: outcome.attempts,
      lastError: outcome.lastError,
      at,
      body: d.body,
      contentType: d.contentType,
      headers: d.headers,
      timeoutMs: d.timeoutMs,
    });
    this.#metrics?.deadLetters.inc({ rule });
    this.#metrics?.deadLettersStored.set(this.deadLetters.count());
    this.#o.logger?.warn({ rule, eventId, url: d.url, ...outcome }, 'HTTP delivery dead-lettered');
  }

  /** Sends a dead letter once more: delivered → removed; failed → kept with the new error. */
  async retryDeadLetter(
    id: string,
  ): Promise<{ outcome: 'delivered' | 'failed'; lastError?: string } | undefined> {
    const letter = this.deadLetters.get(id);
    if (!letter) return undefined;
    const outcome = await deliver(
      { ...letter, maxAttempts: 1 },
      {
        sleep: this.#o.sleep ?? realSleep,
        backoff: this.#backoff,
        signal: this.#stopping.signal,
        egress: this.#egress,
      },
    );
    if (outcome.refused) this.#metrics?.httpRefused.inc({ rule: letter.rule });
    if (outcome.ok) {
      this.deadLetters.remove(id);
      this.#metrics?.deadLettersStored.set(this.deadLetters.count());
      return { outcome: 'delivered' };
    }
    this.deadLetters.failedAgain(id, outcome.attempts, outcome.lastError ?? '', this.#clock.now());
    return { outcome: 'failed', lastError: outcome.lastError ?? '' };
  }

  discardDeadLetter(id: string): boolean {
    const removed = this.deadLetters.remove(id);
    this.#metrics?.deadLettersStored.set(this.deadLetters.count());
    return removed;
  }

  /** Resolves once no HTTP delivery is in progress. */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  /** Stops following rule changes; deliveries still retrying end now and are dead-lettered. */
  async stop(): Promise<void> {
    this.#unsubscribe();
    this.#stopping.abort();
    await this.idle();
    this.#egress.http.destroy();
    this.#egress.https.destroy();
  }
}

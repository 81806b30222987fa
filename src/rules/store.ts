import type { z } from 'zod';
import { uuidv7 } from '../common/index.js';
import { type EntityRecord, HybridClock, type RegistryService } from '../registry/index.js';
import { redactedHeader, ruleNameReserved, ruleNotFound, ruleVersionMismatch } from './errors.js';
import { type putRuleBody, TOPIC_RULE_KIND, type TopicRuleDoc, topicRuleDocSchema } from './model.js';
import { keepRedactedHeaders } from './redact.js';

export type ApiRule = TopicRuleDoc & { version: number };

export interface RulePutResult {
  rule: ApiRule;
  created: boolean;
  changed: boolean;
}

const PAGE = 500;

function live(record: EntityRecord | undefined): record is EntityRecord & { doc: Record<string, unknown> } {
  return record !== undefined && !record.deleted && record.doc !== null;
}

/** The stored rule, or undefined when the document does not validate (never applied then). */
export function parseRuleRecord(record: EntityRecord): ApiRule | undefined {
  return live(record) ? parseRuleDoc(record.doc, record.version) : undefined;
}

export function parseRuleDoc(doc: unknown, version: number): ApiRule | undefined {
  const parsed = topicRuleDocSchema.safeParse(doc);
  return parsed.success ? { ...parsed.data, version } : undefined;
}

/** Same rule, ignoring timestamps: a PUT that changes nothing writes nothing. */
function sameRule(a: TopicRuleDoc, b: Omit<TopicRuleDoc, 'createdAt' | 'updatedAt'>): boolean {
  const strip = (r: Partial<TopicRuleDoc>) =>
    JSON.stringify([r.name, r.topicFilter, r.select ?? null, r.actions, r.enabled]);
  return strip(a) === strip(b);
}

/**
 * API rules as registry entities of kind `topic-rule` (key = rule name), so replication carries
 * them to every region. Writes go through the service's transaction like every registry write;
 * their hybrid logical clock is moved past the rule's previous write (last writer wins per rule)
 * and handed back to the service, so the region's later writes still order after them.
 */
export class RuleStore {
  readonly #service: RegistryService;
  readonly #configNames: ReadonlySet<string>;
  readonly #hlc: HybridClock;

  constructor(service: RegistryService, configNames: Iterable<string>) {
    this.#service = service;
    this.#configNames = new Set(configNames);
    this.#hlc = new HybridClock(service.clock);
  }

  async init(): Promise<void> {
    const max = await this.#service.store.maxHlc();
    if (max) this.#hlc.restore(max);
  }

  isConfigName(name: string): boolean {
    return this.#configNames.has(name);
  }

  /** Every API rule, by name. */
  async list(): Promise<ApiRule[]> {
    const out: ApiRule[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#service.store.list(TOPIC_RULE_KIND, {
        limit: PAGE,
        ...(after === undefined ? {} : { after }),
      });
      for (const record of page) {
        const rule = parseRuleRecord(record);
        if (rule) out.push(rule);
      }
      if (page.length < PAGE) return out;
      after = page[page.length - 1]?.key;
    }
  }

  async get(name: string): Promise<ApiRule> {
    const record = await this.#service.store.get(TOPIC_RULE_KIND, name);
    const rule = record ? parseRuleRecord(record) : undefined;
    if (!rule) throw ruleNotFound(name);
    return rule;
  }

  async put(name: string, body: z.infer<typeof putRuleBody>): Promise<RulePutResult> {
    if (this.#configNames.has(name)) throw ruleNameReserved(name);
    return this.#service.transaction(async (tx) => {
      const previous = await tx.get(TOPIC_RULE_KIND, name, { includeDeleted: true });
      const current = previous && live(previous) ? parseRuleRecord(previous) : undefined;
      if (body.expectedVersion !== undefined && (current?.version ?? 0) !== body.expectedVersion) {
        throw ruleVersionMismatch(name, current?.version ?? 0, body.expectedVersion);
      }
      // A rule read back from the API has its header values redacted; '***' keeps the stored one.
      const { actions, issues } = keepRedactedHeaders(body.actions, current?.actions);
      if (issues.length > 0) throw redactedHeader(issues);
      const definition = {
        name,
        topicFilter: body.topicFilter,
        ...(body.select === undefined ? {} : { select: body.select }),
        actions,
        enabled: body.enabled,
      };
      if (current && sameRule(current, definition)) return { rule: current, created: false, changed: false };
      const now = new Date(this.#service.clock.now()).toISOString();
      const doc: TopicRuleDoc = { ...definition, createdAt: current?.createdAt ?? now, updatedAt: now };
      const version = (previous?.version ?? 0) + 1;
      await tx.apply(this.#mutation(name, doc, version, previous));
      return { rule: { ...doc, version }, created: current === undefined, changed: true };
    });
  }

  async delete(name: string, expectedVersion?: number): Promise<void> {
    if (this.#configNames.has(name)) throw ruleNameReserved(name);
    await this.#service.transaction(async (tx) => {
      const previous = await tx.get(TOPIC_RULE_KIND, name);
      if (!previous || !live(previous)) throw ruleNotFound(name);
      if (expectedVersion !== undefined && previous.version !== expectedVersion) {
        throw ruleVersionMismatch(name, previous.version, expectedVersion);
      }
      await tx.apply(this.#mutation(name, null, previous.version + 1, previous));
    });
  }

  #mutation(name: string, doc: TopicRuleDoc | null, version: number, previous: EntityRecord | undefined) {
    const hlc = previous ? this.#hlc.receive(previous.hlc) : this.#hlc.now();
    this.#service.observeHlc(hlc);
    return {
      changeId: uuidv7(hlc.wall),
      kind: TOPIC_RULE_KIND,
      key: name,
      op: doc === null ? ('delete' as const) : ('upsert' as const),
      ref: null,
      doc: doc === null ? null : { ...doc },
      version,
      hlc,
      origin: this.#service.region,
      at: this.#service.clock.now(),
    };
  }
}

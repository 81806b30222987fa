import { EventEmitter } from 'node:events';
import type { z } from 'zod';
import { type Clock, IotdrError, systemClock, ValidationError } from '../../common/index.js';
import type { Role, TokenScope } from '../../http/index.js';
import type { CertificateAuthority } from '../../pki/index.js';
import { HybridClock } from '../hlc.js';
import { type DocumentKind, DocumentKinds } from '../kinds.js';
import type {
  CertificateStatus,
  PolicyTarget,
  patchCaCertificateBody,
  patchCertificateBody,
  patchPolicyBody,
  putPolicyBody,
  putThingBody,
  putThingGroupBody,
  putThingTypeBody,
  ThingPrincipalType,
  TokenDoc,
} from '../model.js';
import { KIND } from '../model.js';
import type { ChangeRecord, Doc, EntityRecord, Hlc, RegistryStore } from '../store/index.js';
import * as associations from './associations.js';
import * as certs from './certificates.js';
import { put, remove, type ServiceContext, type WriteTx, writeTransaction } from './core.js';
import * as deviceTokens from './device-tokens.js';
import * as policies from './policies.js';
import * as shadows from './shadows.js';
import * as things from './things.js';
import * as tokens from './tokens.js';

export interface RegistryServiceOptions {
  store: RegistryStore;
  /** This region's name: the origin of every change made through this service. */
  region: string;
  /** Issues device certificates; without it POST /v1/certificates answers 503. */
  ca?: CertificateAuthority;
  clock?: Clock;
  /**
   * Document kinds of other components this registry stores and replicates (topic rules,
   * command-and-control documents), beside its own. A change of a kind not registered is refused
   * (IOTDR_REGISTRY_UNKNOWN_KIND): every region of a platform registers the same kinds.
   */
  kinds?: readonly DocumentKind[];
}

export interface Page<T> {
  items: T[];
  /** Opaque; pass it back as `cursor` for the next page. Absent on the last page. */
  nextCursor?: string;
}

export interface PageRequest {
  limit?: number;
  cursor?: string;
}

/** Default and largest page size of list calls. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/** Rows per read where a list helper returns every row (a group's things, a certificate's policies). */
export const LIST_ALL_PAGE = 1000;
/** Largest `wait` of a change-feed long poll, in ms. */
export const MAX_CHANGES_WAIT_MS = 30_000;
/** How often a waiting long poll re-reads the log even without a local commit (other writers). */
const CHANGES_RECHECK_MS = 1000;

function encodeCursor(kind: string, key: string): string {
  return Buffer.from(JSON.stringify({ k: kind, a: key })).toString('base64url');
}

function decodeCursor(kind: string, cursor: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      k?: unknown;
      a?: unknown;
    };
    if (parsed.k === kind && typeof parsed.a === 'string') return parsed.a;
  } catch {
    // fall through to the error below
  }
  throw new ValidationError('invalid cursor', [
    { path: 'cursor', message: 'not a cursor returned by this list: pass nextCursor back unchanged' },
  ]);
}

/**
 * The device registry of one region. Every mutation writes the entity and its change record in
 * one transaction (see store/types.ts); reads go straight to the store.
 */
export class RegistryService {
  readonly region: string;
  readonly store: RegistryStore;
  /** The kinds this registry accepts; replication checks every change it receives against them. */
  readonly kinds: DocumentKinds;
  readonly #ctx: ServiceContext;
  readonly #ca: CertificateAuthority | undefined;
  readonly #tokens = new tokens.TokenCache();

  constructor(options: RegistryServiceOptions) {
    const clock = options.clock ?? systemClock;
    this.region = options.region;
    this.store = options.store;
    this.#ca = options.ca;
    this.kinds = new DocumentKinds(options.kinds);
    const events = new EventEmitter();
    events.setMaxListeners(0);
    this.#ctx = { store: options.store, hlc: new HybridClock(clock), clock, region: options.region, events };
    events.on('commit', (changes: ChangeRecord[]) => {
      for (const c of changes) if (c.kind === KIND.token) this.#tokens.forget(c.key);
    });
  }

  /** Restores the clock past every change already logged, and registers the embedded CA. */
  async init(): Promise<void> {
    const max = await this.store.maxHlc();
    if (max) this.#ctx.hlc.restore(max);
    if (this.#ca) await certs.registerEmbeddedCa(this.#ctx, this.#ca);
  }

  /** The service's clock (injected in tests). */
  get clock(): Clock {
    return this.#ctx.clock;
  }

  /**
   * Runs a write transaction on the store directly. Replication uses it to apply changes made in
   * another region with their own ids, versions, HLCs and origins, and to keep its cursor in the
   * same transaction; commit listeners see what it wrote, as for any write.
   */
  transaction<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T> {
    return writeTransaction(this.#ctx, fn);
  }

  /**
   * Writes one entity of another component's registered kind (commands, idempotency records,
   * onboarding jobs) with its change record, inside `tx`; a null `doc` deletes it. `previous` is the current
   * record, tombstone included, so versions continue. The document is checked as a receiving
   * region will check it, so nothing is written that replication would dead-letter.
   */
  async writeEntity(
    tx: WriteTx,
    kind: string,
    key: string,
    ref: string | null,
    doc: Doc | null,
    previous: EntityRecord | undefined,
  ): Promise<number> {
    if (doc === null) {
      if (!previous || previous.deleted) return previous?.version ?? 0;
      await remove(this.#ctx, tx, previous);
      return previous.version + 1;
    }
    const problem = this.kinds.problem(kind, key, ref, doc);
    // A bug of the writing component (or a kind its process did not register), never the user's.
    if (problem) throw new IotdrError(problem.code, `refusing to write ${kind} '${key}': ${problem.reason}`);
    return put(this.#ctx, tx, kind, key, ref, doc, previous);
  }

  /** Moves this region's clock past a timestamp seen from another region. */
  observeHlc(hlc: Hlc): void {
    this.#ctx.hlc.receive(hlc);
  }

  /** Called with the changes of every committed transaction. Returns the unsubscribe function. */
  onCommit(listener: (changes: ChangeRecord[]) => void): () => void {
    this.#ctx.events.on('commit', listener);
    return () => this.#ctx.events.off('commit', listener);
  }

  async #page<T>(
    kind: string,
    request: PageRequest,
    map: (r: EntityRecord & { doc: Doc }) => T,
  ): Promise<Page<T>> {
    const limit = Math.min(request.limit ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
    const after = request.cursor === undefined ? undefined : decodeCursor(kind, request.cursor);
    const rows = await this.store.list(kind, { limit: limit + 1, ...(after === undefined ? {} : { after }) });
    const items = rows.slice(0, limit).map((r) => map(r as EntityRecord & { doc: Doc }));
    const last = rows[limit - 1];
    return rows.length > limit && last ? { items, nextCursor: encodeCursor(kind, last.key) } : { items };
  }

  /** Every entity of a kind matching the filter, in key order, read a page at a time. */
  async #listAll(kind: string, filter: { prefix?: string; ref?: string }): Promise<EntityRecord[]> {
    const all: EntityRecord[] = [];
    let after: string | undefined;
    for (;;) {
      const rows = await this.store.list(kind, {
        ...filter,
        limit: LIST_ALL_PAGE,
        ...(after === undefined ? {} : { after }),
      });
      all.push(...rows);
      const last = rows.at(-1);
      if (rows.length < LIST_ALL_PAGE || last === undefined) return all;
      after = last.key;
    }
  }

  #view<T>(r: EntityRecord & { doc: Doc }): T & { version: number } {
    return { ...(r.doc as T), version: r.version };
  }

  // Things, thing types, thing groups.
  putThing(name: string, body: z.infer<typeof putThingBody>) {
    return things.putThing(this.#ctx, name, body);
  }
  getThing(name: string) {
    return things.getThing(this.#ctx, name);
  }
  listThings(page: PageRequest) {
    return this.#page<things.Thing>(KIND.thing, page, (r) => this.#view(r));
  }
  deleteThing(name: string, options: { force?: boolean; expectedVersion?: number } = {}) {
    return things.deleteThing(this.#ctx, name, options);
  }
  putThingType(name: string, body: z.infer<typeof putThingTypeBody>) {
    return things.putThingType(this.#ctx, name, body);
  }
  getThingType(name: string) {
    return things.getThingType(this.#ctx, name);
  }
  listThingTypes(page: PageRequest) {
    return this.#page<things.ThingType>(KIND.thingType, page, (r) => this.#view(r));
  }
  deleteThingType(name: string, options: { expectedVersion?: number } = {}) {
    return things.deleteThingType(this.#ctx, name, options);
  }
  putThingGroup(name: string, body: z.infer<typeof putThingGroupBody>) {
    return things.putThingGroup(this.#ctx, name, body);
  }
  getThingGroup(name: string) {
    return things.getThingGroup(this.#ctx, name);
  }
  listThingGroups(page: PageRequest) {
    return this.#page<things.ThingGroup>(KIND.thingGroup, page, (r) => this.#view(r));
  }
  deleteThingGroup(name: string, options: { force?: boolean; expectedVersion?: number } = {}) {
    return things.deleteThingGroup(this.#ctx, name, options);
  }
  addThingToGroup(group: string, thing: string) {
    return things.addThingToGroup(this.#ctx, group, thing);
  }
  removeThingFromGroup(group: string, thing: string) {
    return things.removeThingFromGroup(this.#ctx, group, thing);
  }
  /** Things of a group, in name order. */
  async listGroupThings(group: string): Promise<string[]> {
    await things.getThingGroup(this.#ctx, group);
    const rows = await this.#listAll(KIND.groupMember, { prefix: `${group}|` });
    return rows.map((r) => r.key.slice(group.length + 1));
  }
  /** Groups a thing belongs to. */
  async listThingGroupsOf(thing: string): Promise<string[]> {
    await things.getThing(this.#ctx, thing);
    const rows = await this.#listAll(KIND.groupMember, { ref: thing });
    return rows.map((r) => r.key.slice(0, r.key.length - thing.length - 1));
  }

  // Policies.
  putPolicy(name: string, body: z.infer<typeof putPolicyBody>) {
    return policies.putPolicy(this.#ctx, name, body);
  }
  getPolicy(name: string) {
    return policies.getPolicy(this.#ctx, name);
  }
  listPolicies(page: PageRequest) {
    return this.#page<policies.Policy>(KIND.policy, page, (r) => this.#view(r));
  }
  deletePolicy(name: string, options: { force?: boolean; expectedVersion?: number } = {}) {
    return policies.deletePolicy(this.#ctx, name, options);
  }
  /** Makes an existing version the default (AWS IoT SetDefaultPolicyVersion). */
  setDefaultPolicyVersion(name: string, body: z.infer<typeof patchPolicyBody>) {
    return policies.setDefaultPolicyVersion(this.#ctx, name, body);
  }
  /** Deletes a version other than the default (AWS IoT DeletePolicyVersion). */
  deletePolicyVersion(name: string, versionId: string, options: { expectedVersion?: number } = {}) {
    return policies.deletePolicyVersion(this.#ctx, name, versionId, options);
  }
  attachPolicy(certificateId: string, policyName: string) {
    return policies.attachPolicy(this.#ctx, certificateId, policyName);
  }
  detachPolicy(certificateId: string, policyName: string) {
    return policies.detachPolicy(this.#ctx, certificateId, policyName);
  }
  /** AWS IoT AttachPolicy: the target is a certificate or a thing group (model.ts policyTargetSchema). */
  attachPolicyTo(target: PolicyTarget, policyName: string) {
    return target.kind === 'certificate'
      ? this.attachPolicy(target.id, policyName)
      : this.attachGroupPolicy(target.name, policyName);
  }
  /** AWS IoT DetachPolicy. */
  detachPolicyFrom(target: PolicyTarget, policyName: string) {
    return target.kind === 'certificate'
      ? this.detachPolicy(target.id, policyName)
      : this.detachGroupPolicy(target.name, policyName);
  }
  attachGroupPolicy(group: string, policyName: string) {
    return associations.attachGroupPolicy(this.#ctx, group, policyName);
  }
  detachGroupPolicy(group: string, policyName: string) {
    return associations.detachGroupPolicy(this.#ctx, group, policyName);
  }
  /** Policies attached to a thing group. */
  async listGroupPolicies(group: string): Promise<string[]> {
    await things.getThingGroup(this.#ctx, group);
    return associations.groupPolicies(this.store, group);
  }
  /** What a thing inherits from its groups and their ancestors: the groups, and their policies. */
  async inheritedPolicies(thingName: string): Promise<associations.InheritedPolicies> {
    await things.getThing(this.#ctx, thingName);
    return associations.inheritedPolicies(this.store, thingName);
  }
  /** Policies attached to a certificate. */
  async listCertificatePolicies(certificateId: string): Promise<string[]> {
    await certs.getCertificate(this.#ctx, certificateId);
    const rows = await this.#listAll(KIND.policyPrincipal, { prefix: `${certificateId}|` });
    return rows.map((r) => r.key.slice(certificateId.length + 1));
  }

  // Certificates.
  createCertificate(body: { csr?: string; status?: CertificateStatus }) {
    return certs.createCertificate(this.#ctx, this.#ca, body);
  }
  registerCertificate(body: {
    certificatePem: string;
    caCertificatePem?: string;
    status?: CertificateStatus;
  }) {
    return certs.registerCertificate(this.#ctx, body);
  }
  getCertificate(id: string) {
    return certs.getCertificate(this.#ctx, id);
  }
  listCertificates(page: PageRequest) {
    return this.#page<certs.Certificate>(KIND.certificate, page, (r) => this.#view(r));
  }
  updateCertificateStatus(id: string, body: z.infer<typeof patchCertificateBody>) {
    return certs.updateCertificateStatus(this.#ctx, id, body);
  }
  deleteCertificate(id: string, options: { force?: boolean; expectedVersion?: number } = {}) {
    return certs.deleteCertificate(this.#ctx, id, options);
  }
  /**
   * Attaches a certificate to a thing (AWS IoT AttachThingPrincipal); `type` is the association,
   * NON_EXCLUSIVE_THING for a new attachment when absent (associations.ts).
   */
  attachCertificate(thingName: string, certificateId: string, type?: ThingPrincipalType) {
    return associations.attachCertificate(this.#ctx, thingName, certificateId, type);
  }
  detachCertificate(thingName: string, certificateId: string) {
    return associations.detachCertificate(this.#ctx, thingName, certificateId);
  }
  /** The attachment of a certificate to a thing, with its type. */
  getThingPrincipal(thingName: string, certificateId: string) {
    return associations.getThingPrincipal(this.store, thingName, certificateId);
  }
  /** Certificates attached to a thing. */
  async listThingCertificates(thingName: string): Promise<string[]> {
    await things.getThing(this.#ctx, thingName);
    const rows = await this.#listAll(KIND.thingPrincipal, { prefix: `${thingName}|` });
    return rows.map((r) => r.key.slice(thingName.length + 1));
  }
  /** Things a certificate is attached to. */
  async listCertificateThings(certificateId: string): Promise<string[]> {
    return (await this.listCertificateAttachments(certificateId)).map((t) => t.thingName);
  }
  /** Things a certificate is attached to, in name order, with the association type of each. */
  async listCertificateAttachments(certificateId: string): Promise<associations.CertificateThing[]> {
    await certs.getCertificate(this.#ctx, certificateId);
    return associations.certificateThings(this.store, certificateId);
  }
  registerCaCertificate(body: { caCertificatePem: string; status?: 'ACTIVE' | 'INACTIVE' }) {
    return certs.registerCaCertificate(this.#ctx, body);
  }
  getCaCertificate(id: string) {
    return certs.getCaCertificate(this.#ctx, id);
  }
  listCaCertificates(page: PageRequest) {
    return this.#page<certs.CaCertificate>(KIND.caCertificate, page, (r) => this.#view(r));
  }
  updateCaCertificateStatus(id: string, body: z.infer<typeof patchCaCertificateBody>) {
    return certs.updateCaCertificateStatus(this.#ctx, id, body);
  }
  deleteCaCertificate(id: string, options: { expectedVersion?: number } = {}) {
    return certs.deleteCaCertificate(this.#ctx, id, options);
  }

  // Tokens.
  createToken(name: string, role: Role, scope?: TokenScope) {
    return tokens.createToken(this.#ctx, name, role, scope);
  }
  ensureToken(token: string, name: string, role: Role) {
    return tokens.ensureToken(this.#ctx, token, name, role);
  }
  verifyToken(token: string) {
    return tokens.verifyToken(this.#ctx, this.#tokens, token);
  }
  getToken(tokenId: string) {
    return tokens.getToken(this.#ctx, tokenId);
  }
  listTokens(page: PageRequest) {
    return this.#page<tokens.TokenInfo>(KIND.token, page, (r) =>
      tokens.tokenInfo(r.doc as unknown as TokenDoc, r.version),
    );
  }
  deleteToken(tokenId: string) {
    return tokens.deleteToken(this.#ctx, tokenId);
  }

  // Device tokens (the broker's token listener).
  /** Issues the thing's device token, replacing any previous one; returned this once. */
  createDeviceToken(thingName: string, policyNames: readonly string[]) {
    return deviceTokens.createDeviceToken(this.#ctx, thingName, policyNames);
  }
  getDeviceToken(thingName: string) {
    return deviceTokens.getDeviceToken(this.#ctx, thingName);
  }
  deleteDeviceToken(thingName: string) {
    return deviceTokens.deleteDeviceToken(this.#ctx, thingName);
  }
  /** The token's policies when it is the thing's current device token, undefined otherwise. */
  verifyDeviceToken(thingName: string, token: string) {
    return deviceTokens.verifyDeviceToken(this.#ctx, thingName, token);
  }

  // Device shadows (classic, one per thing).
  /** The thing's shadow with its delta; 404 IOTDR_SHADOW_NOT_FOUND when it has none. */
  getShadow(thingName: string) {
    return shadows.getShadow(this.#ctx, thingName);
  }
  /** Merges an update request (validated here) into the shadow, creating it; the thing must exist. */
  updateShadow(thingName: string, request: unknown, options: { clientToken?: string } = {}) {
    return shadows.updateShadow(this.#ctx, thingName, request, options);
  }
  /** Deletes the shadow; `request` may carry `version` (must match) and `clientToken`. */
  deleteShadow(thingName: string, request?: unknown) {
    return shadows.deleteShadow(this.#ctx, thingName, request);
  }

  /**
   * The change log after `after`, in order. With `waitMs`, an empty answer waits up to that long
   * for the next commit (long poll); `signal` ends the wait early (client gone, shutdown).
   * `scannedTo` says up to which seq the answer is complete for the filter: the log's last seq
   * read before the changes, when the page is not full.
   */
  async changes(options: {
    after: number;
    limit: number;
    origin?: string;
    waitMs?: number;
    signal?: AbortSignal;
  }): Promise<{ changes: ChangeRecord[]; scannedTo: number }> {
    const read = async () => {
      // Seqs are gap-free in commit order: every change up to `upTo` is visible to the query after.
      const upTo = await this.store.lastSeq();
      const changes = await this.store.changes({
        after: options.after,
        limit: options.limit,
        ...(options.origin === undefined ? {} : { origin: options.origin }),
      });
      const last = changes[changes.length - 1]?.seq ?? options.after;
      const scannedTo = changes.length < options.limit ? Math.max(last, upTo, options.after) : last;
      return { changes, scannedTo };
    };
    const first = await read();
    const waitMs = Math.min(options.waitMs ?? 0, MAX_CHANGES_WAIT_MS);
    if (first.changes.length > 0 || waitMs <= 0) return first;
    const deadline = this.#ctx.clock.now() + waitMs;
    let latest = first;
    while (!options.signal?.aborted) {
      const remaining = deadline - this.#ctx.clock.now();
      if (remaining <= 0) break;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          off();
          options.signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(remaining, CHANGES_RECHECK_MS));
        const off = this.onCommit((changes) => {
          if (changes.some((c) => c.seq > options.after)) done();
        });
        options.signal?.addEventListener('abort', done, { once: true });
      });
      // Aborted means the client left or the region is stopping (the store may be closing).
      if (options.signal?.aborted) break;
      latest = await read();
      if (latest.changes.length > 0) return latest;
    }
    return latest;
  }
}

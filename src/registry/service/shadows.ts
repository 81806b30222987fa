import { IotdrError } from '../../common/index.js';
import type { ShadowErrorCode } from '../errors.js';
import { KIND } from '../model.js';
import type { Doc, EntityRecord } from '../store/index.js';
import { live, loadAny, put, remove, type ServiceContext, writeTransaction } from './core.js';

/**
 * Classic device shadows (one per thing), modelled on AWS IoT's Device Shadow service: an update
 * merges into `desired` / `reported` (a null removes a key, a null section removes the section),
 * every accepted update increments the version, and `delta` is what `desired` asks for that
 * `reported` does not say yet. A shadow is a registry entity keyed by thing name, so it has a
 * change record and replicates like any other entity.
 *
 * The stored document also keeps the state before its last update (`previous`) and that update's
 * clientToken: a region that receives the change by replication can then tell its devices what
 * changed (`documents`, `delta`) from the after-image alone.
 */

// AWS IoT's fixed limits. Constants rather than options: every region must accept what any other
// region wrote, or replication would dead-letter it.
/** Largest `state` (desired + reported, as JSON), in bytes (AWS IoT: 8 KB). */
export const SHADOW_MAX_STATE_BYTES = 8192;
/** Deepest nesting inside `desired` or `reported` (AWS IoT: 6 levels). */
export const SHADOW_MAX_DEPTH = 6;
/** Longest clientToken, in bytes (AWS IoT: 64). */
export const SHADOW_MAX_CLIENT_TOKEN_BYTES = 64;
/** Largest request payload, in bytes: the state limit plus room for clientToken, version and nulls. */
export const SHADOW_MAX_REQUEST_BYTES = SHADOW_MAX_STATE_BYTES + 1024;

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export interface ShadowSections {
  desired?: JsonObject;
  reported?: JsonObject;
}

/** A shadow's state at one version, as `documents` messages show it. */
export interface ShadowSnapshot {
  state: ShadowSections;
  metadata: ShadowSections;
  version: number;
}

/** The stored entity (kind `shadow`, key = thing name). Its version is the entity's version. */
export interface ShadowDoc {
  thingName: string;
  state: ShadowSections;
  /** Same shape as `state`; every leaf is `{ timestamp }` of its last update (seconds). */
  metadata: ShadowSections;
  /** Seconds since the epoch of the last update. */
  timestamp: number;
  /** clientToken of the last update, null when it had none. */
  clientToken: string | null;
  /** The shadow before the last update; null when that update created it. */
  previous: ShadowSnapshot | null;
}

/** A shadow as GET answers it (AWS IoT's response state document). */
export interface ShadowDocument {
  state: ShadowSections & { delta?: JsonObject };
  metadata: ShadowSections;
  version: number;
  timestamp: number;
}

/** What an accepted update answers: the request's state and the metadata it set. */
export interface ShadowUpdateAccepted {
  state: { desired?: JsonObject | null; reported?: JsonObject | null };
  metadata: { desired?: JsonValue; reported?: JsonValue };
  version: number;
  timestamp: number;
  clientToken?: string;
}

export interface ShadowDeleteAccepted {
  /** Version of the shadow that was deleted. */
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** A validated update request. */
export interface ShadowUpdate {
  desired?: JsonObject | null;
  reported?: JsonObject | null;
  version?: number;
  clientToken?: string;
}

/** The delta of a shadow: desired values that reported does not match, and their metadata. */
export interface ShadowDelta {
  state: JsonObject;
  metadata: JsonObject;
}

/**
 * A shadow failure. `status` is AWS IoT's error code for the same failure (the `code` of an MQTT
 * rejected message) and the HTTP status; `code` is iotdr's stable code.
 */
export class ShadowError extends IotdrError {
  constructor(code: ShadowErrorCode, status: 400 | 404 | 409 | 413 | 500, message: string, details = {}) {
    super(code, message, { status, details });
    this.name = 'ShadowError';
  }
}

export function invalidShadow(message: string): ShadowError {
  return new ShadowError('IOTDR_SHADOW_INVALID', 400, message);
}

export function shadowTooLarge(bytes: number, maxBytes = SHADOW_MAX_STATE_BYTES): ShadowError {
  return new ShadowError('IOTDR_SHADOW_TOO_LARGE', 413, 'The payload exceeds the maximum size allowed', {
    bytes,
    maxBytes,
  });
}

function shadowNotFound(thingName: string): ShadowError {
  return new ShadowError('IOTDR_SHADOW_NOT_FOUND', 404, `No shadow exists with name: '${thingName}'`, {
    thingName,
  });
}

function versionConflict(expected: number, actual: number): ShadowError {
  return new ShadowError('IOTDR_SHADOW_VERSION_CONFLICT', 409, 'Version conflict', {
    expectedVersion: expected,
    actualVersion: actual,
  });
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object's own value at `key`: a key such as `constructor` must not find Object.prototype's. */
function own(value: JsonValue | undefined, key: string): JsonValue | undefined {
  return isJsonObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/**
 * Why a value is not acceptable shadow JSON, or undefined. Nesting is counted from the section
 * (`desired: { a: 1 }` is one level). NUL characters are refused because PostgreSQL's JSONB cannot
 * store them, and `__proto__` because it would reach an object's prototype when merged.
 */
function jsonProblem(value: unknown, path: string, depth: number): string | undefined {
  if (value === null || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${path} is not a JSON number`;
  if (typeof value === 'string') return value.includes('\0') ? `${path} contains a NUL character` : undefined;
  if (typeof value !== 'object') return `${path} is not JSON`;
  if (depth > SHADOW_MAX_DEPTH) {
    return `JSON contains too many levels of nesting; maximum is ${SHADOW_MAX_DEPTH}`;
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  for (const [key, child] of entries) {
    if (key === '__proto__' || key.includes('\0')) return `${path} has an invalid key`;
    const problem = jsonProblem(child, `${path}.${key}`, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function validClientToken(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && utf8Bytes(value) <= SHADOW_MAX_CLIENT_TOKEN_BYTES;
}

/** The request's clientToken when it has a valid one, so even a rejection can echo it. */
export function clientTokenOf(request: unknown): string | undefined {
  return isJsonObject(request) && validClientToken(request.clientToken) ? request.clientToken : undefined;
}

function parseVersion(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidShadow('Invalid version: a non-negative integer');
  }
  return value;
}

function parseRequestToken(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (!validClientToken(value)) {
    throw invalidShadow(`Invalid clientToken: a string of 1 to ${SHADOW_MAX_CLIENT_TOKEN_BYTES} bytes`);
  }
  return value;
}

/** Validates an update request (`{ state: { desired?, reported? }, version?, clientToken? }`). */
export function parseShadowUpdate(request: unknown): ShadowUpdate {
  if (!isJsonObject(request)) throw invalidShadow('The request must be a JSON object');
  for (const key of Object.keys(request)) {
    if (key !== 'state' && key !== 'version' && key !== 'clientToken') {
      throw invalidShadow(`Unknown field: '${key}'; allowed: state, version, clientToken`);
    }
  }
  const update: ShadowUpdate = {};
  const version = parseVersion(request.version);
  if (version !== undefined) update.version = version;
  const clientToken = parseRequestToken(request.clientToken);
  if (clientToken !== undefined) update.clientToken = clientToken;
  const state = request.state;
  if (state === undefined) throw invalidShadow('Missing required node: state');
  if (!isJsonObject(state)) throw invalidShadow('State node must be an object');
  for (const key of Object.keys(state)) {
    if (key !== 'desired' && key !== 'reported') {
      throw invalidShadow(`State contains an invalid node: '${key}'`);
    }
  }
  for (const section of ['desired', 'reported'] as const) {
    const value = state[section];
    if (value === undefined) continue;
    if (value !== null && !isJsonObject(value)) {
      throw invalidShadow(`${section === 'desired' ? 'Desired' : 'Reported'} node must be an object`);
    }
    const problem = jsonProblem(value, `state.${section}`, 1);
    if (problem) throw invalidShadow(problem);
    update[section] = value as JsonObject | null;
  }
  if (update.desired === undefined && update.reported === undefined) {
    throw invalidShadow('State contains neither desired nor reported');
  }
  return update;
}

/** Validates a delete request (none, or `{ version?, clientToken? }`). */
export function parseShadowDelete(request: unknown): { version?: number; clientToken?: string } {
  // An HTTP DELETE without a body arrives as null.
  if (request === undefined || request === null) return {};
  if (!isJsonObject(request)) throw invalidShadow('The request must be a JSON object');
  for (const key of Object.keys(request)) {
    if (key !== 'version' && key !== 'clientToken') {
      throw invalidShadow(`Unknown field: '${key}'; allowed: version, clientToken`);
    }
  }
  const out: { version?: number; clientToken?: string } = {};
  const version = parseVersion(request.version);
  if (version !== undefined) out.version = version;
  const clientToken = parseRequestToken(request.clientToken);
  if (clientToken !== undefined) out.clientToken = clientToken;
  return out;
}

/** Metadata of a value set at `ts`: the value's shape with `{ timestamp }` at every leaf. */
function metadataOf(value: JsonValue, ts: number): JsonValue {
  if (Array.isArray(value)) return value.map((v) => metadataOf(v, ts));
  if (isJsonObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = metadataOf(v, ts);
    return out;
  }
  return { timestamp: ts };
}

function clone<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

/** Merges `patch` into `target` (and its metadata) in place: null removes, objects merge per key. */
function merge(target: JsonObject, meta: JsonObject, patch: JsonObject, ts: number): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete target[key];
      delete meta[key];
      continue;
    }
    if (isJsonObject(value)) {
      // A value that was not an object before has leaf metadata, which the new object replaces.
      if (!isJsonObject(own(target, key))) {
        target[key] = {};
        meta[key] = {};
      } else if (!isJsonObject(own(meta, key))) {
        meta[key] = {};
      }
      merge(target[key] as JsonObject, meta[key] as JsonObject, value, ts);
      continue;
    }
    target[key] = clone(value);
    meta[key] = metadataOf(value, ts);
  }
}

/** Deep equality of JSON values; object key order does not matter. */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]))
    );
  }
  if (!isJsonObject(a) || !isJsonObject(b)) return false;
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
  );
}

/**
 * The delta: every desired key whose value reported does not have. Objects on both sides compare
 * key by key (the delta holds only the differing keys); anything else compares as a whole.
 */
export function shadowDelta(state: ShadowSections, metadata: ShadowSections): ShadowDelta {
  const walk = (desired: JsonObject, reported: JsonValue | undefined, meta: JsonValue | undefined) => {
    const delta: JsonObject = {};
    const deltaMeta: JsonObject = {};
    for (const [key, want] of Object.entries(desired)) {
      const have = own(reported, key);
      const keyMeta = own(meta, key);
      if (isJsonObject(want) && isJsonObject(have)) {
        const inner = walk(want, have, keyMeta);
        if (Object.keys(inner.state).length > 0) {
          delta[key] = inner.state;
          deltaMeta[key] = inner.metadata;
        }
      } else if (!jsonEqual(want, have)) {
        delta[key] = clone(want);
        if (keyMeta !== undefined) deltaMeta[key] = clone(keyMeta);
      }
    }
    return { state: delta, metadata: deltaMeta };
  };
  return state.desired ? walk(state.desired, state.reported, metadata.desired) : { state: {}, metadata: {} };
}

/** The shadow as GET answers it. */
export function viewShadow(doc: ShadowDoc, version: number): ShadowDocument {
  const delta = shadowDelta(doc.state, doc.metadata);
  const state: ShadowDocument['state'] = clone(doc.state as JsonObject) as ShadowSections;
  if (Object.keys(delta.state).length > 0) state.delta = delta.state;
  return {
    state,
    metadata: clone(doc.metadata as JsonObject) as ShadowSections,
    version,
    timestamp: doc.timestamp,
  };
}

/** What a committed shadow change tells devices: both documents, and the delta when it changed. */
export interface ShadowChange {
  previous: ShadowSnapshot | null;
  current: ShadowSnapshot;
  timestamp: number;
  clientToken?: string;
  /** The new delta; absent when there is none or it is the same as before the update. */
  delta?: ShadowDelta;
}

/**
 * Derived from the after-image alone, so every region derives the same from a replicated change.
 * A delta is announced when the update left one that differs from the delta before it: a device
 * hears each new request, not every report that leaves an old request pending.
 */
export function shadowChange(doc: ShadowDoc, version: number): ShadowChange {
  const current: ShadowSnapshot = { state: doc.state, metadata: doc.metadata, version };
  const out: ShadowChange = { previous: doc.previous, current, timestamp: doc.timestamp };
  if (doc.clientToken !== null) out.clientToken = doc.clientToken;
  const delta = shadowDelta(doc.state, doc.metadata);
  const before = doc.previous ? shadowDelta(doc.previous.state, doc.previous.metadata).state : {};
  if (Object.keys(delta.state).length > 0 && !jsonEqual(delta.state, before)) out.delta = delta;
  return out;
}

/** Why a stored shadow document (e.g. one arriving by replication) breaks the limits, or undefined. */
export function shadowDocProblem(doc: ShadowDoc): string | undefined {
  const snapshots: Array<[string, ShadowSections, ShadowSections]> = [['', doc.state, doc.metadata]];
  if (doc.previous) snapshots.push(['previous.', doc.previous.state, doc.previous.metadata]);
  for (const [prefix, state, metadata] of snapshots) {
    for (const section of ['desired', 'reported'] as const) {
      for (const [what, value] of [
        ['state', state[section]],
        ['metadata', metadata[section]],
      ] as const) {
        if (value === undefined) continue;
        if (!isJsonObject(value)) return `${prefix}${what}.${section} is not an object`;
        // Metadata has one level more than its state: arrays of objects get `{ timestamp }` leaves.
        const problem = jsonProblem(value, `${prefix}${what}.${section}`, what === 'state' ? 1 : 0);
        if (problem) return problem;
      }
    }
    const bytes = utf8Bytes(JSON.stringify(state));
    if (bytes > SHADOW_MAX_STATE_BYTES) {
      return `${prefix}state is ${bytes} bytes; at most ${SHADOW_MAX_STATE_BYTES}`;
    }
  }
  if (doc.clientToken !== null && !validClientToken(doc.clientToken)) return 'invalid clientToken';
  return undefined;
}

function secondsNow(ctx: ServiceContext): number {
  return Math.floor(ctx.clock.now() / 1000);
}

function liveShadow(record: EntityRecord | undefined): (EntityRecord & { doc: Doc }) | undefined {
  return live(record) ? record : undefined;
}

export async function getShadow(ctx: ServiceContext, thingName: string): Promise<ShadowDocument> {
  const record = liveShadow(await ctx.store.get(KIND.shadow, thingName));
  if (!record) throw shadowNotFound(thingName);
  return viewShadow(record.doc as unknown as ShadowDoc, record.version);
}

/**
 * Applies an update request to the thing's shadow, creating it when there is none. The thing must
 * exist. A shadow deleted before continues its version (as AWS IoT does within 48 hours).
 */
export async function updateShadow(
  ctx: ServiceContext,
  thingName: string,
  request: unknown,
  options: { clientToken?: string } = {},
): Promise<ShadowUpdateAccepted> {
  const update = parseShadowUpdate(request);
  const requestBytes = utf8Bytes(JSON.stringify(request));
  if (requestBytes > SHADOW_MAX_REQUEST_BYTES) throw shadowTooLarge(requestBytes, SHADOW_MAX_REQUEST_BYTES);
  const clientToken = update.clientToken ?? parseRequestToken(options.clientToken);
  // Returned directly: commit listeners run before the caller resumes (the MQTT engine relies on it).
  return writeTransaction(ctx, async (tx) => {
    if (!live(await tx.get(KIND.thing, thingName))) {
      throw new ShadowError(
        'IOTDR_SHADOW_THING_NOT_FOUND',
        404,
        `No thing exists with name: '${thingName}'`,
        {
          thingName,
        },
      );
    }
    const previous = await loadAny(tx, KIND.shadow, thingName);
    const current = liveShadow(previous);
    const currentVersion = current ? current.version : 0;
    if (update.version !== undefined && update.version !== currentVersion) {
      throw versionConflict(update.version, currentVersion);
    }
    const before = current ? (current.doc as unknown as ShadowDoc) : undefined;
    const ts = secondsNow(ctx);
    const state: ShadowSections = before ? (clone(before.state as JsonObject) as ShadowSections) : {};
    const metadata: ShadowSections = before ? (clone(before.metadata as JsonObject) as ShadowSections) : {};
    const acceptedMeta: ShadowUpdateAccepted['metadata'] = {};
    for (const section of ['desired', 'reported'] as const) {
      const patch = update[section];
      if (patch === undefined) continue;
      if (patch === null) {
        delete state[section];
        delete metadata[section];
        acceptedMeta[section] = { timestamp: ts };
        continue;
      }
      const target = state[section] ?? {};
      const meta = metadata[section] ?? {};
      merge(target, meta, patch, ts);
      // An emptied section goes, as a removed key does.
      if (Object.keys(target).length > 0) {
        state[section] = target;
        metadata[section] = meta;
      } else {
        delete state[section];
        delete metadata[section];
      }
      acceptedMeta[section] = metadataOf(patch, ts);
    }
    const bytes = utf8Bytes(JSON.stringify(state));
    if (bytes > SHADOW_MAX_STATE_BYTES) throw shadowTooLarge(bytes);
    const doc: ShadowDoc = {
      thingName,
      state,
      metadata,
      timestamp: ts,
      clientToken: clientToken ?? null,
      previous: before ? { state: before.state, metadata: before.metadata, version: currentVersion } : null,
    };
    const version = await put(ctx, tx, KIND.shadow, thingName, null, { ...doc }, previous);
    const accepted: ShadowUpdateAccepted = {
      state: {
        ...(update.desired === undefined ? {} : { desired: update.desired }),
        ...(update.reported === undefined ? {} : { reported: update.reported }),
      },
      metadata: acceptedMeta,
      version,
      timestamp: ts,
    };
    if (clientToken !== undefined) accepted.clientToken = clientToken;
    return accepted;
  });
}

/** Deletes the thing's shadow; `version`, when given, must be the shadow's current version. */
export async function deleteShadow(
  ctx: ServiceContext,
  thingName: string,
  request: unknown = undefined,
): Promise<ShadowDeleteAccepted> {
  const options = parseShadowDelete(request);
  return writeTransaction(ctx, async (tx) => {
    const record = liveShadow(await tx.get(KIND.shadow, thingName));
    if (!record) throw shadowNotFound(thingName);
    if (options.version !== undefined && options.version !== record.version) {
      throw versionConflict(options.version, record.version);
    }
    await remove(ctx, tx, record);
    const accepted: ShadowDeleteAccepted = { version: record.version, timestamp: secondsNow(ctx) };
    if (options.clientToken !== undefined) accepted.clientToken = options.clientToken;
    return accepted;
  });
}

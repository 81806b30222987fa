import type { Client } from 'aedes';
import type { PolicyContext } from '../registry/index.js';
import type { Identity } from './identity.js';
import type { RefusalReason } from './metrics.js';

export type Transport = 'mtls' | 'token';

/** What the listener learned about a connection before MQTT starts. */
export interface ConnectionMeta {
  transport: Transport;
  /** Source IP address. */
  address: string;
  /** SHA-256 hex of the client certificate DER (mTLS listener, when one was presented). */
  certificateId?: string;
}

/** One authenticated MQTT session and what decides for it. */
export interface Session {
  client: Client;
  clientId: string;
  meta: ConnectionMeta;
  identity: Identity;
  /** Policy variables; rebuilt whenever the identity is. */
  context: PolicyContext;
  /** ms epoch of the successful CONNECT. */
  since: number;
  /** Set when the broker closed the session because the registry no longer allows it: its will is not published. */
  revoked: boolean;
  /** A re-resolution is running; `again` asks for one more after it. */
  resolving: boolean;
  again: boolean;
  expiry?: NodeJS.Timeout;
  /** Token listener credentials, kept in memory only to re-check them after a registry change. */
  username?: string;
  password?: Buffer;
}

/** A public view of a session (GET /v1/connections). */
export interface ConnectionInfo {
  /** The thing the session acts as; null when none is associated with the connection (identity.ts). */
  thing: string | null;
  clientId: string;
  /** Source IP address. */
  address: string;
  /** ms epoch of the CONNECT. */
  since: number;
  auth: Transport;
  /** The broker node holding it, in a cluster (docs/broker.md, "Workers and hosts"). */
  node?: string;
}

/**
 * The registry entities a session's decisions depend on, as `kind:key` (certificate, its CA, its
 * thing, the thing's groups and their ancestors, each policy, the device token). A change maps to
 * one such key (changeDependency).
 */
export function dependencies(identity: Identity): string[] {
  if (identity.auth === 'health') return [];
  const out: string[] = identity.policyNames.map((p) => `policy:${p}`);
  if (identity.certificateId !== undefined) out.push(`certificate:${identity.certificateId}`);
  if (identity.caCertificateId !== undefined) out.push(`ca-certificate:${identity.caCertificateId}`);
  if (identity.thingName !== undefined) out.push(`thing:${identity.thingName}`);
  for (const group of identity.thingGroupNames ?? []) out.push(`thing-group:${group}`);
  if (identity.auth === 'token' && identity.thingName !== undefined)
    out.push(`device-token:${identity.thingName}`);
  return out;
}

/** The dependency a committed change touches, or undefined when no session can depend on it. */
export function changeDependency(kind: string, key: string, ref: string | null): string | undefined {
  switch (kind) {
    case 'certificate':
    case 'ca-certificate':
    case 'thing':
    case 'policy':
    case 'device-token':
      return `${kind}:${key}`;
    case 'thing-principal':
      // key `thing|certificateId`, ref certificateId: a thing attached to or detached from the certificate.
      return ref === null ? undefined : `certificate:${ref}`;
    case 'policy-principal':
      // key `certificateId|policy`: a policy attached to or detached from the certificate.
      return `certificate:${key.slice(0, key.indexOf('|'))}`;
    case 'thing-group':
      // A group's parent changed, or the group went: what its things inherit changed.
      return `thing-group:${key}`;
    case 'thing-group-member':
      // key `group|thing`, ref thing: the thing joined or left a group.
      return ref === null ? undefined : `thing:${ref}`;
    case 'thing-group-policy':
      // key `group|policy`: a policy attached to or detached from the group.
      return `thing-group:${key.slice(0, key.indexOf('|'))}`;
    default:
      return undefined;
  }
}

/** The dependencies a commit's changes touch (see changeDependency). */
export function changedDependencies(
  changes: ReadonlyArray<{ kind: string; key: string; ref: string | null }>,
): string[] {
  const touched: string[] = [];
  for (const change of changes) {
    const dependency = changeDependency(change.kind, change.key, change.ref);
    if (dependency !== undefined) touched.push(dependency);
  }
  return touched;
}

/** Why a topic or filter breaks a limit, or undefined when it is within them. */
export function topicProblem(
  topic: string,
  limits: { maxTopicLength: number; maxTopicLevels: number },
): { reason: RefusalReason; detail: string } | undefined {
  const bytes = Buffer.byteLength(topic, 'utf8');
  if (bytes > limits.maxTopicLength) {
    return {
      reason: 'topic_too_long',
      detail: `topic of ${bytes} bytes exceeds the limit of ${limits.maxTopicLength}`,
    };
  }
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++;
  if (levels > limits.maxTopicLevels) {
    return {
      reason: 'topic_too_deep',
      detail: `topic of ${levels} levels exceeds the limit of ${limits.maxTopicLevels}`,
    };
  }
  return undefined;
}

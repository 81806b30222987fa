import type { z } from 'zod';
import type { DocumentKindErrorCode } from './errors.js';
import { BUILT_IN_KINDS } from './validate.js';

/**
 * A kind of document the registry stores and replicates. The registry declares its own (things,
 * certificates, policies, tokens, shadows… in validate.ts); a component that keeps its documents
 * in the registry (topic rules, commands) declares its kinds beside its code and whoever builds a
 * region's RegistryService registers them. So the registry checks a document arriving from a peer
 * with its owner's schema without importing its owner.
 */
export interface DocumentKind {
  /** The stored kind: part of the data on disk and of the replication wire, so never renamed. */
  readonly kind: string;
  /** The stored document. */
  readonly schema: z.ZodType<Record<string, unknown>>;
  /** The key's format; a delete carries no document, only this is checked then. */
  readonly key: z.ZodType<string>;
  /** The key and ref a valid document implies; a change naming others is refused. */
  readonly identity: (doc: Record<string, unknown>) => { key: string; ref: string | null };
  /**
   * What the schema cannot say, or undefined: it is given the original document (not the schema's
   * copy, so a `__proto__` key is seen) after the schema accepted it.
   */
  readonly problem?: (doc: Record<string, unknown>) => string | undefined;
}

/** Why an entity cannot be stored: a stable code and a reason naming the field. */
export interface EntityProblem {
  readonly code: DocumentKindErrorCode;
  readonly reason: string;
}

/** The kinds one registry accepts: its own and those registered with it. */
export class DocumentKinds {
  readonly #kinds = new Map<string, DocumentKind>();

  constructor(registered: readonly DocumentKind[] = []) {
    for (const k of [...BUILT_IN_KINDS, ...registered]) {
      // Two owners of one kind would each accept what the other refuses.
      if (this.#kinds.has(k.kind)) throw new TypeError(`document kind '${k.kind}' is registered twice`);
      this.#kinds.set(k.kind, k);
    }
  }

  /** Every kind accepted, the registry's own first. */
  get names(): readonly string[] {
    return [...this.#kinds.keys()];
  }

  /**
   * Why this entity cannot be applied, or undefined when it can. `doc` is null for a delete. Run on
   * everything that arrives from outside this region's service (a replicated change, a snapshot)
   * and on every document another component writes through `RegistryService.writeEntity`.
   */
  problem(kind: string, key: string, ref: string | null, doc: unknown): EntityProblem | undefined {
    const k = this.#kinds.get(kind);
    if (!k) return { code: 'IOTDR_REGISTRY_UNKNOWN_KIND', reason: `unknown kind '${kind}'` };
    const reason = invalid(k, key, ref, doc);
    return reason === undefined ? undefined : { code: 'IOTDR_REGISTRY_INVALID_ENTITY', reason };
  }
}

function invalid(k: DocumentKind, key: string, ref: string | null, doc: unknown): string | undefined {
  if (!k.key.safeParse(key).success) return `key '${key}' is not a valid ${k.kind} key`;
  if (doc === null) return undefined;
  const parsed = k.schema.safeParse(doc);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return `invalid ${k.kind} document: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'does not parse'}`;
  }
  const expected = k.identity(parsed.data);
  if (expected.key !== key) return `key '${key}' does not match the document (expected '${expected.key}')`;
  if (expected.ref !== ref) return `ref '${ref}' does not match the document (expected '${expected.ref}')`;
  return k.problem?.(doc as Record<string, unknown>);
}

import { z } from 'zod';
import { ConflictError, PkiError } from '../../common/index.js';
import {
  type CertificateAuthority,
  type GeneratedDeviceCertificate,
  type IssuedCertificate,
  isSignedBy,
  type ParsedCertificate,
  parseCertificatePem,
} from '../../pki/index.js';
import { pkiUnavailable } from '../errors.js';
import {
  type CaCertificateDoc,
  type CertificateDoc,
  type CertificateStatus,
  certificateIdSchema,
  KIND,
  type patchCaCertificateBody,
  type patchCertificateBody,
  type ThingPrincipalDoc,
} from '../model.js';
import type { Doc, EntityRecord } from '../store/index.js';
import {
  checkVersion,
  isoNow,
  listAll,
  live,
  loadAny,
  type PutResult,
  put,
  remove,
  requireLive,
  type ServiceContext,
  view,
  type WriteTx,
  writeTransaction,
} from './core.js';

export type Certificate = CertificateDoc & { version: number };
export type CaCertificate = CaCertificateDoc & { version: number };

export interface CreatedCertificate {
  certificate: Certificate;
  /** Present only when iotdr generated the key pair: returned this once, never stored. */
  privateKeyPem?: string;
  publicKeyPem?: string;
}

/**
 * Revocation is final in every region. A write of a certificate that says REVOKED — its document,
 * or the tombstone of a revoked certificate that was deleted — absorbs every other write of the
 * same certificate, whatever their clocks: replication keeps it over a later write from a region
 * that had not seen it yet (src/replication/conflict.ts), and this region refuses to change, or to
 * register again, a certificate it knows as revoked. The certificate id is the fingerprint, so a
 * revoked certificate deleted and registered again is the same certificate.
 */
export function isRevocation(kind: string, doc: Doc | null): boolean {
  return kind === KIND.certificate && doc !== null && doc.status === 'REVOKED';
}

/** What the tombstone of a deleted revoked certificate keeps. */
export interface RevokedTombstoneDoc {
  certificateId: string;
  status: 'REVOKED';
  notAfter: string;
  /**
   * ms since the epoch: the certificate's notAfter. Past it no region accepts the certificate
   * (registration and the broker refuse an expired one), so the store may purge the tombstone once
   * the tombstone retention has passed after it, not before.
   */
  retainUntil: number;
}

const revokedTombstoneSchema = z
  .object({
    certificateId: certificateIdSchema,
    status: z.literal('REVOKED'),
    notAfter: z.string().min(1),
    retainUntil: z.number().int().nonnegative(),
  })
  .strict();

function revokedTombstone(doc: CertificateDoc): RevokedTombstoneDoc {
  const expires = Date.parse(doc.notAfter);
  return {
    certificateId: doc.certificateId,
    status: 'REVOKED',
    notAfter: doc.notAfter,
    // An unreadable notAfter never expires the tombstone.
    retainUntil: Number.isFinite(expires) ? Math.max(0, expires) : Number.MAX_SAFE_INTEGER,
  };
}

/**
 * Why a delete arriving from another region cannot keep its document, or undefined. Only a
 * revoked certificate's tombstone keeps one.
 */
export function tombstoneProblem(kind: string, key: string, doc: Doc): string | undefined {
  if (kind !== KIND.certificate) return `a delete of a ${kind} carries no document`;
  const parsed = revokedTombstoneSchema.safeParse(doc);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return `invalid certificate tombstone: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'does not parse'}`;
  }
  if (parsed.data.certificateId !== key) {
    return `key '${key}' does not match the tombstone (expected '${parsed.data.certificateId}')`;
  }
  return undefined;
}

function certificateRevoked(id: string, what: string): ConflictError {
  return new ConflictError(
    'IOTDR_REGISTRY_CERTIFICATE_REVOKED',
    `certificate ${id} is REVOKED; a revoked certificate cannot ${what}`,
    { certificateId: id },
  );
}

/** Refuses a write over a certificate known here as revoked, live or deleted. */
function refuseRevoked(record: EntityRecord | undefined, id: string, what: string): void {
  if (record !== undefined && isRevocation(record.kind, record.doc)) throw certificateRevoked(id, what);
}

function certificateDoc(
  issued: IssuedCertificate | ParsedCertificate,
  status: CertificateStatus,
  caCertificateId: string | null,
  now: string,
): CertificateDoc {
  return {
    certificateId: issued.certificateId,
    certificatePem: issued.certificatePem,
    status,
    caCertificateId,
    subject: issued.subject,
    issuer: issued.issuer,
    serialNumber: issued.serialNumber,
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
    createdAt: now,
    updatedAt: now,
  };
}

function caDoc(parsed: ParsedCertificate, status: 'ACTIVE' | 'INACTIVE', now: string): CaCertificateDoc {
  return {
    certificateId: parsed.certificateId,
    certificatePem: parsed.certificatePem,
    status,
    subject: parsed.subject,
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    createdAt: now,
    updatedAt: now,
  };
}

function checkValidity(parsed: ParsedCertificate, nowMs: number, what: string): void {
  if (Date.parse(parsed.notAfter) <= nowMs) {
    throw new PkiError('IOTDR_PKI_CERTIFICATE_EXPIRED', `the ${what} expired on ${parsed.notAfter}`, {
      issues: [
        { path: what === 'CA certificate' ? 'caCertificatePem' : 'certificatePem', message: 'expired' },
      ],
    });
  }
}

async function insertCertificate(
  ctx: ServiceContext,
  tx: WriteTx,
  doc: CertificateDoc,
): Promise<{ item: Certificate; created: boolean }> {
  const previous = await loadAny(tx, KIND.certificate, doc.certificateId);
  refuseRevoked(previous, doc.certificateId, 'be registered again');
  if (live(previous)) return { item: view<CertificateDoc>(previous), created: false };
  const version = await put(
    ctx,
    tx,
    KIND.certificate,
    doc.certificateId,
    doc.caCertificateId,
    { ...doc },
    previous,
  );
  return { item: { ...doc, version }, created: true };
}

/** Issues a device certificate from the embedded CA, from the device's CSR or with a new key pair. */
export async function createCertificate(
  ctx: ServiceContext,
  ca: CertificateAuthority | undefined,
  body: { csr?: string; status?: CertificateStatus },
): Promise<CreatedCertificate> {
  if (!ca) {
    throw pkiUnavailable();
  }
  // Crypto happens before the transaction, so the single writer never waits on it.
  let keys: GeneratedDeviceCertificate | undefined;
  let issued: IssuedCertificate;
  if (body.csr === undefined) {
    keys = await ca.issueDeviceCertificate();
    issued = keys;
  } else {
    issued = await ca.signCsr(body.csr);
  }
  const caParsed = parseCertificatePem(ca.certificatePem);
  const result = await writeTransaction(ctx, async (tx) => {
    await ensureCa(ctx, tx, caParsed);
    return insertCertificate(
      ctx,
      tx,
      certificateDoc(issued, body.status ?? 'ACTIVE', ca.certificateId, isoNow(ctx)),
    );
  });
  const created: CreatedCertificate = { certificate: result.item };
  if (keys) {
    created.privateKeyPem = keys.privateKeyPem;
    created.publicKeyPem = keys.publicKeyPem;
  }
  return created;
}

async function ensureCa(ctx: ServiceContext, tx: WriteTx, parsed: ParsedCertificate): Promise<void> {
  const previous = await loadAny(tx, KIND.caCertificate, parsed.certificateId);
  if (live(previous)) return;
  await put(
    ctx,
    tx,
    KIND.caCertificate,
    parsed.certificateId,
    null,
    { ...caDoc(parsed, 'ACTIVE', isoNow(ctx)) },
    previous,
  );
}

/** Registers the embedded CA as a CA certificate, once; called at region start. */
export async function registerEmbeddedCa(ctx: ServiceContext, ca: CertificateAuthority): Promise<void> {
  const parsed = parseCertificatePem(ca.certificatePem);
  const existing = await ctx.store.get(KIND.caCertificate, parsed.certificateId);
  if (live(existing)) return;
  await writeTransaction(ctx, (tx) => ensureCa(ctx, tx, parsed));
}

/**
 * Registers a device certificate made elsewhere. With `caCertificatePem` the certificate must be
 * signed by that CA, which must be registered and ACTIVE; without it, a registered CA whose subject
 * is the certificate's issuer and whose key signed it is linked, else the certificate is
 * registered on its own. Registering the same certificate again returns it unchanged.
 */
export async function registerCertificate(
  ctx: ServiceContext,
  body: { certificatePem: string; caCertificatePem?: string; status?: CertificateStatus },
): Promise<PutResult<Certificate>> {
  const parsed = parseCertificatePem(body.certificatePem);
  if (parsed.isCa) {
    throw new PkiError(
      'IOTDR_PKI_UNEXPECTED_CA',
      'certificatePem is a CA certificate: register it with POST /v1/ca-certificates',
      { issues: [{ path: 'certificatePem', message: 'a CA certificate, expected a device certificate' }] },
    );
  }
  checkValidity(parsed, ctx.clock.now(), 'certificate');
  let caId: string | null = null;
  if (body.caCertificatePem !== undefined) {
    const ca = parseCertificatePem(body.caCertificatePem);
    if (!(await isSignedBy(parsed.certificatePem, ca.certificatePem))) {
      throw new PkiError('IOTDR_PKI_NOT_SIGNED_BY_CA', 'certificatePem is not signed by caCertificatePem', {
        issues: [{ path: 'certificatePem', message: `not signed by the CA '${ca.subject}'` }],
      });
    }
    caId = ca.certificateId;
  } else {
    for (const candidate of await listAll(ctx.store, KIND.caCertificate, {})) {
      const doc = candidate.doc as unknown as CaCertificateDoc;
      if (doc.subject === parsed.issuer && (await isSignedBy(parsed.certificatePem, doc.certificatePem))) {
        caId = doc.certificateId;
        break;
      }
    }
  }
  return writeTransaction(ctx, async (tx) => {
    if (caId !== null) {
      const ca = await tx.get(KIND.caCertificate, caId);
      if (!live(ca)) {
        throw new ConflictError(
          'IOTDR_REGISTRY_CA_NOT_REGISTERED',
          `the CA certificate ${caId} is not registered: register it with POST /v1/ca-certificates first, or leave out caCertificatePem to register the certificate on its own`,
          { caCertificateId: caId },
        );
      }
      if ((ca.doc as unknown as CaCertificateDoc).status !== 'ACTIVE') {
        throw new ConflictError('IOTDR_REGISTRY_CA_INACTIVE', `the CA certificate ${caId} is INACTIVE`, {
          caCertificateId: caId,
        });
      }
    }
    const result = await insertCertificate(
      ctx,
      tx,
      certificateDoc(parsed, body.status ?? 'ACTIVE', caId, isoNow(ctx)),
    );
    return { ...result, changed: result.created };
  });
}

export async function getCertificate(ctx: ServiceContext, id: string): Promise<Certificate> {
  return view<CertificateDoc>(await requireLive(ctx.store, KIND.certificate, id));
}

export async function updateCertificateStatus(
  ctx: ServiceContext,
  id: string,
  body: z.infer<typeof patchCertificateBody>,
): Promise<Certificate> {
  return writeTransaction(ctx, async (tx) => {
    const record = await requireLive(tx, KIND.certificate, id);
    checkVersion(KIND.certificate, id, record, body.expectedVersion);
    const doc = record.doc as unknown as CertificateDoc;
    if (doc.status === body.status) return view<CertificateDoc>(record);
    refuseRevoked(record, id, 'change status');
    const next: CertificateDoc = { ...doc, status: body.status, updatedAt: isoNow(ctx) };
    const version = await put(ctx, tx, KIND.certificate, id, record.ref, { ...next }, record);
    return { ...next, version };
  });
}

export async function deleteCertificate(
  ctx: ServiceContext,
  id: string,
  options: { force?: boolean; expectedVersion?: number },
): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const record = await requireLive(tx, KIND.certificate, id);
    checkVersion(KIND.certificate, id, record, options.expectedVersion);
    const things = await listAll(tx, KIND.thingPrincipal, { ref: id });
    const policies = await listAll(tx, KIND.policyPrincipal, { prefix: `${id}|` });
    if (!options.force) {
      if (things.length + policies.length > 0) {
        const attached = [
          ...things.map((t) => ({
            kind: KIND.thing,
            key: (t.doc as unknown as ThingPrincipalDoc).thingName,
          })),
          ...policies.map((p) => ({ kind: KIND.policy, key: p.ref ?? '' })),
        ];
        throw new ConflictError(
          'IOTDR_REGISTRY_STILL_ATTACHED',
          `certificate ${id} is still attached to ${attached.map((a) => `${a.kind} '${a.key}'`).join(', ')}; detach first or delete with force=true`,
          { attached },
        );
      }
      if ((record.doc as unknown as CertificateDoc).status === 'ACTIVE') {
        throw new ConflictError(
          'IOTDR_REGISTRY_CERTIFICATE_ACTIVE',
          `certificate ${id} is ACTIVE; set its status to INACTIVE or REVOKED first, or delete with force=true`,
          { certificateId: id },
        );
      }
    }
    for (const a of [...things, ...policies]) await remove(ctx, tx, a);
    const doc = record.doc as unknown as CertificateDoc;
    await remove(ctx, tx, record, doc.status === 'REVOKED' ? { ...revokedTombstone(doc) } : null);
  });
}

export async function registerCaCertificate(
  ctx: ServiceContext,
  body: { caCertificatePem: string; status?: 'ACTIVE' | 'INACTIVE' },
): Promise<PutResult<CaCertificate>> {
  const parsed = parseCertificatePem(body.caCertificatePem);
  if (!parsed.isCa) {
    throw new PkiError(
      'IOTDR_PKI_NOT_A_CA',
      'caCertificatePem is not a CA certificate (basicConstraints cA is not set)',
      {
        issues: [{ path: 'caCertificatePem', message: 'not a CA certificate' }],
      },
    );
  }
  checkValidity(parsed, ctx.clock.now(), 'CA certificate');
  return writeTransaction(ctx, async (tx) => {
    const previous = await loadAny(tx, KIND.caCertificate, parsed.certificateId);
    if (live(previous)) return { item: view<CaCertificateDoc>(previous), created: false, changed: false };
    const doc = caDoc(parsed, body.status ?? 'ACTIVE', isoNow(ctx));
    const version = await put(ctx, tx, KIND.caCertificate, parsed.certificateId, null, { ...doc }, previous);
    return { item: { ...doc, version }, created: true, changed: true };
  });
}

export async function getCaCertificate(ctx: ServiceContext, id: string): Promise<CaCertificate> {
  return view<CaCertificateDoc>(await requireLive(ctx.store, KIND.caCertificate, id));
}

export async function updateCaCertificateStatus(
  ctx: ServiceContext,
  id: string,
  body: z.infer<typeof patchCaCertificateBody>,
): Promise<CaCertificate> {
  return writeTransaction(ctx, async (tx) => {
    const record = await requireLive(tx, KIND.caCertificate, id);
    checkVersion(KIND.caCertificate, id, record, body.expectedVersion);
    const doc = record.doc as unknown as CaCertificateDoc;
    if (doc.status === body.status) return view<CaCertificateDoc>(record);
    const next: CaCertificateDoc = { ...doc, status: body.status, updatedAt: isoNow(ctx) };
    const version = await put(ctx, tx, KIND.caCertificate, id, null, { ...next }, record);
    return { ...next, version };
  });
}

export async function deleteCaCertificate(
  ctx: ServiceContext,
  id: string,
  options: { expectedVersion?: number },
): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const record = await requireLive(tx, KIND.caCertificate, id);
    checkVersion(KIND.caCertificate, id, record, options.expectedVersion);
    const total = await tx.count(KIND.certificate, { ref: id });
    if (total > 0) {
      const some = await tx.list(KIND.certificate, { ref: id, limit: 20 });
      throw new ConflictError(
        'IOTDR_REGISTRY_IN_USE',
        `CA certificate ${id} still has ${total} registered certificate(s) signed by it: ${some.map((c) => c.key).join(', ')}${total > 20 ? ', …' : ''}; delete them first`,
        { usedBy: 'certificates', names: some.map((c) => c.key), total },
      );
    }
    await remove(ctx, tx, record);
  });
}

import type { Doc, RegistryService } from '../registry/index.js';

const PAGE = 500;

/**
 * Deletes (with tombstones, so the deletes replicate) every live entity of `kind` whose document
 * `expired` says so. Each region prunes what it made (`expired` checks the document's region), so
 * two regions never delete the same record twice. Returns how many went.
 */
export async function pruneEntities(
  service: RegistryService,
  kind: string,
  expired: (doc: Doc) => boolean,
): Promise<number> {
  let removed = 0;
  let after: string | undefined;
  for (;;) {
    const page = await service.store.list(kind, { limit: PAGE, ...(after === undefined ? {} : { after }) });
    const gone = page.filter((r) => !r.deleted && r.doc !== null && expired(r.doc));
    if (gone.length > 0)
      await service.transaction(async (tx) => {
        for (const record of gone) {
          const current = await tx.get(kind, record.key, { includeDeleted: true });
          await service.writeEntity(tx, kind, record.key, record.ref, null, current);
        }
      });
    removed += gone.length;
    if (page.length < PAGE) return removed;
    after = page[page.length - 1]?.key;
  }
}

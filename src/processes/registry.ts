import { CNC_DOCUMENTS } from '../commands/index.js';
import { type DocumentKind, RegistryService, type RegistryServiceOptions } from '../registry/index.js';
import { RULE_DOCUMENTS } from '../rules/index.js';

/**
 * Documents other components keep in a region's registry, which it stores and replicates beside
 * its own. Every region and broker node registers the same list: a kind one region lacks would be
 * refused there (IOTDR_REGISTRY_UNKNOWN_KIND) and dead-lettered by replication.
 */
export const REGION_DOCUMENTS: readonly DocumentKind[] = [...RULE_DOCUMENTS, ...CNC_DOCUMENTS];

/** The registry service of a region, with the region's document kinds registered. */
export function regionRegistryService(options: Omit<RegistryServiceOptions, 'kinds'>): RegistryService {
  return new RegistryService({ ...options, kinds: REGION_DOCUMENTS });
}

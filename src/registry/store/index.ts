export { GroupCommitter, type TxControl } from './group-commit.js';
export { PostgresStore, type PostgresStoreOptions } from './postgres.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
export type {
  ChangeOp,
  ChangeRecord,
  ChangesOptions,
  CountOptions,
  Doc,
  EntityRecord,
  Hlc,
  ListOptions,
  LocalRecord,
  Mutation,
  RegistryStore,
  ScanOptions,
  StoreReader,
  StoreTx,
} from './types.js';
export { compareHlc } from './types.js';

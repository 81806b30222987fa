import type { GroupCommitter } from './group-commit.js';
import type {
  CountOptions,
  Doc,
  EntityRecord,
  ListOptions,
  LocalRecord,
  ScanOptions,
  StoreReader,
  StoreTx,
} from './types.js';

/**
 * What both engines share: reads outside transactions go to the engine's read side, writes to its
 * group committer. `ready()` throws a StoreError before init() and after close().
 */
export abstract class EngineStore {
  protected abstract ready(): { reader: StoreReader; committer: GroupCommitter };

  async get(
    kind: string,
    key: string,
    options?: { includeDeleted?: boolean },
  ): Promise<EntityRecord | undefined> {
    return this.ready().reader.get(kind, key, options);
  }

  async list(kind: string, options: ListOptions): Promise<EntityRecord[]> {
    return this.ready().reader.list(kind, options);
  }

  async count(kind: string, options?: CountOptions): Promise<number> {
    return this.ready().reader.count(kind, options);
  }

  async scan(options: ScanOptions): Promise<EntityRecord[]> {
    return this.ready().reader.scan(options);
  }

  async getLocal(key: string): Promise<Doc | undefined> {
    return this.ready().reader.getLocal(key);
  }

  async listLocal(prefix: string, options: { after?: string; limit: number }): Promise<LocalRecord[]> {
    return this.ready().reader.listLocal(prefix, options);
  }

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    try {
      return this.ready().committer.run(fn);
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/registry/store/index.js';
import { storeSuite } from './store-suite.js';

storeSuite('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iotdr-sqlite-'));
  const path = join(dir, 'registry.db');
  const store = new SqliteStore({ path });
  await store.init();
  return {
    store,
    reopen: () => new SqliteStore({ path }),
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

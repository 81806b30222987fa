import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Mutation } from '../../src/registry/store/index.js';
import { PostgresStore } from '../../src/registry/store/index.js';
import { postgresSkipReason, type RunningPostgres, startPostgres } from '../harness/postgres.js';
import { storeSuite } from './store-suite.js';

const skipReason = postgresSkipReason();
if (skipReason !== undefined) console.warn(`skipping the PostgreSQL store tests: ${skipReason}`);

let schemas = 0;
/** A schema name no other store in this run uses. */
function freshSchema(): string {
  schemas += 1;
  return `t${process.pid}_${schemas}`;
}

function mutation(key: string, origin: string): Mutation {
  const now = Date.now();
  return {
    changeId: randomUUID(),
    kind: 'thing',
    key,
    op: 'upsert',
    ref: null,
    doc: { thingName: key },
    version: 1,
    hlc: { wall: now, counter: 0 },
    origin,
    at: now,
  };
}

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
    });
  });
}

(skipReason === undefined ? describe : describe.skip)('PostgreSQL registry store', () => {
  let server: RunningPostgres | undefined;
  let admin: pg.Pool | undefined;

  const url = (): string => {
    if (!server) throw new Error('PostgreSQL is not running');
    return server.url;
  };
  const dropSchema = async (schema: string): Promise<void> => {
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  };

  beforeAll(async () => {
    const started = await startPostgres();
    if ('skipped' in started) throw new Error(started.skipped);
    server = started;
    admin = new pg.Pool({ connectionString: started.url, max: 2 });
  });

  afterAll(async () => {
    await admin?.end();
    await server?.stop();
  });

  storeSuite('postgres', async () => {
    const schema = freshSchema();
    const open = (): PostgresStore => new PostgresStore({ connectionString: url(), schema, poolSize: 4 });
    const store = open();
    await store.init();
    return {
      store,
      reopen: open,
      async cleanup() {
        await store.close();
        await dropSchema(schema);
      },
    };
  });

  describe('beyond the shared contract', () => {
    it('keeps seqs gap-free in commit order when two processes write the same schema', async () => {
      const schema = freshSchema();
      const a = new PostgresStore({ connectionString: url(), schema, poolSize: 2 });
      const b = new PostgresStore({ connectionString: url(), schema, poolSize: 2 });
      const reader = new PostgresStore({ connectionString: url(), schema, poolSize: 2 });
      try {
        await Promise.all([a.init(), b.init()]);
        await reader.init();

        // A replicator tails the log while both write: it must never find a seq below one it saw.
        let writing = true;
        let cursor = 0;
        const tail = (async () => {
          while (writing || cursor < (await reader.lastSeq())) {
            const page = await reader.changes({ after: cursor, limit: 50 });
            for (const [i, c] of page.entries()) expect(c.seq).toBe(cursor + i + 1);
            cursor = page.at(-1)?.seq ?? cursor;
          }
        })();

        const perWriter = 150;
        const write = (store: PostgresStore, origin: string) =>
          Promise.all(
            Array.from({ length: perWriter }, (_, i) =>
              store.transaction(async (tx) => {
                await tx.apply(mutation(`${origin}-${i}`, origin));
                // Hold the transaction across a round trip so the two writers interleave.
                await tx.get('thing', `${origin}-${i}`);
              }),
            ),
          );
        await Promise.all([write(a, 'us-east'), write(b, 'us-west')]);
        writing = false;
        await tail;

        const log = await reader.changes({ after: 0, limit: 1000 });
        expect(log.map((c) => c.seq)).toEqual(Array.from({ length: 2 * perWriter }, (_, i) => i + 1));
        expect(cursor).toBe(2 * perWriter);
        expect(await reader.count('thing')).toBe(2 * perWriter);
      } finally {
        await Promise.all([a.close(), b.close(), reader.close()]);
        await dropSchema(schema);
      }
    });

    it('reconnects the writer after the server dropped its connection', async () => {
      const schema = freshSchema();
      const store = new PostgresStore({ connectionString: url(), schema, poolSize: 2 });
      try {
        await store.init();
        await store.transaction((tx) => tx.apply(mutation('before', 'us-east')));
        await admin?.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name IN ('iotdr-writer', 'iotdr')",
        );

        // The first attempt may still meet the dead connection; it must say so with a typed error.
        let committed = false;
        for (let attempt = 0; attempt < 2 && !committed; attempt++) {
          try {
            await store.transaction((tx) => tx.apply(mutation('after', 'us-east')));
            committed = true;
          } catch (error) {
            expect(error).toMatchObject({ code: 'IOTDR_STORE_UNAVAILABLE' });
          }
        }
        expect(committed).toBe(true);
        expect((await store.changes({ after: 0, limit: 10 })).map((c) => [c.seq, c.key])).toEqual([
          [1, 'before'],
          [2, 'after'],
        ]);
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });

    it('does not report a transaction as committed after one of its statements failed', async () => {
      const schema = freshSchema();
      const store = new PostgresStore({ connectionString: url(), schema, poolSize: 1 });
      try {
        await store.init();
        const first = mutation('first', 'us-east');
        await store.transaction((tx) => tx.apply(first));
        // PostgreSQL aborts the whole transaction on a failed statement and answers its COMMIT
        // with ROLLBACK; the caller that swallowed the error must hear that nothing was kept.
        const swallow = () =>
          store.transaction(async (tx) => {
            await tx
              .apply({ ...mutation('dup', 'us-east'), changeId: first.changeId })
              .catch(() => undefined);
            await tx.apply(mutation('other', 'us-east')).catch(() => undefined);
          });
        // Alone in its commit, and folded into one commit with a bystander that must not suffer.
        await expect(swallow()).rejects.toMatchObject({ code: 'IOTDR_STORE_TX_ABORTED' });
        const blocker = store.transaction((tx) => tx.apply(mutation('blocker', 'us-east')));
        const batched = swallow();
        const bystander = store.transaction((tx) => tx.apply(mutation('bystander', 'us-east')));
        await expect(batched).rejects.toMatchObject({ code: 'IOTDR_STORE_TX_ABORTED' });
        await expect(bystander).resolves.toMatchObject({ seq: 3 });
        await blocker;
        expect(await store.get('thing', 'other')).toBeUndefined();
        expect(await store.lastSeq()).toBe(3);
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });

    it('reports an unreachable server as IOTDR_STORE_UNAVAILABLE with the cause', async () => {
      const port = await closedPort();
      const store = new PostgresStore({
        connectionString: `postgres://postgres@127.0.0.1:${port}/iotdr`,
        schema: 'x',
      });
      const error = await store.init().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'IOTDR_STORE_UNAVAILABLE' });
      expect((error as Error).cause).toMatchObject({ code: 'ECONNREFUSED' });
      await store.close();
    });

    it('refuses a schema name that is not a plain identifier', () => {
      for (const schema of ['', 'Upper', '1abc', 'a-b', 'a"; DROP SCHEMA public; --', 'x'.repeat(64)]) {
        expect(() => new PostgresStore({ connectionString: url(), schema })).toThrow(
          expect.objectContaining({ code: 'IOTDR_STORE_CONFIG' }),
        );
      }
    });

    it('stores keys with the "C" collation whatever the database default', async () => {
      const schema = freshSchema();
      const store = new PostgresStore({ connectionString: url(), schema, poolSize: 1 });
      try {
        await store.init();
        const { rows } = (await admin?.query<{ collation: string | null }>(
          `SELECT collation_name AS collation FROM information_schema.columns
           WHERE table_schema = $1 AND table_name = 'entities' AND column_name = 'key'`,
          [schema],
        )) ?? { rows: [] };
        expect(rows).toEqual([{ collation: 'C' }]);
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });
  });
});

/**
 * iotdr's broker on its own, as a child process of the bench, for as long as `iotdr region` does
 * not start one: `createBroker` over the region's SQLite registry and embedded CA, the mutual-TLS
 * listener and the token listener on the given ports of 127.0.0.1, logging at level warn. It
 * prints one JSON line with the bound addresses once both listen, and closes on SIGTERM or SIGINT.
 *
 *   node --import tsx bench/broker/server.ts --state-dir D --db F --region R --zone Z --port P --token-port Q
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createBroker } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { RegistryService, SqliteStore } from '../../src/registry/index.js';

const port = z.coerce.number().int().min(0).max(65_535);
const argsSchema = z.object({
  'state-dir': z.string().min(1),
  db: z.string().min(1),
  region: z.string().min(1),
  zone: z.string().min(1),
  port,
  'token-port': port,
  /** New connections per second per address; the bench's load all comes from 127.0.0.1. */
  'connection-rate': z.coerce.number().int().min(1),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'state-dir': { type: 'string' },
      db: { type: 'string' },
      region: { type: 'string' },
      zone: { type: 'string' },
      port: { type: 'string' },
      'token-port': { type: 'string' },
      'connection-rate': { type: 'string' },
    },
  });
  const parsed = argsSchema.safeParse(values);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`);
    throw new Error(`bad arguments: ${issues.join('; ')}`);
  }
  const args = parsed.data;
  const logger = createLogger({ level: 'warn', name: `bench-broker:${args.region}`, destination: undefined });
  const ca = await loadOrCreateCa(join(args['state-dir'], 'pki'));
  const store = new SqliteStore({ path: args.db });
  await store.init();
  const service = new RegistryService({ store, region: args.region, ca });
  await service.init();
  const broker = await createBroker({
    region: args.region,
    service,
    ca,
    zone: args.zone,
    host: '127.0.0.1',
    port: args.port,
    tokenListener: { port: args['token-port'] },
    limits: { connectionsPerSecondPerAddress: args['connection-rate'] },
    logger,
  });
  const addresses = await broker.listen();
  process.stdout.write(`${JSON.stringify(addresses)}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await broker.close();
      await store.close();
    })().then(
      () => {
        process.exitCode = 0;
      },
      (error: unknown) => {
        process.stderr.write(`closing failed: ${String(error)}\n`);
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});

/**
 * A broker node in a process of its own, standing for another host of a region: it reads the
 * region's registry from the same SQLite file, shares the region's Redis and CA, and prints its
 * addresses as one JSON line once it listens. SIGTERM closes it.
 *
 * Usage: node --import tsx broker-node-child.ts '{"dir": …, "redis": …, "region": …, "node": …}'
 */
import { join } from 'node:path';
import { createBrokerNode } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import { SqliteStore } from '../../src/registry/index.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as {
  dir: string;
  redis: string;
  region: string;
  node: string;
};
const ca = await loadOrCreateCa(join(spec.dir, 'pki'));
const store = new SqliteStore({ path: join(spec.dir, 'registry.db'), synchronous: 'normal' });
await store.init();
const service = regionRegistryService({ store, region: spec.region });
const node = await createBrokerNode({
  region: spec.region,
  service,
  ca,
  zone: 'iot.test',
  host: '127.0.0.1',
  port: 0,
  logger: createLogger({ level: 'warn', destination: process.stderr }),
  cluster: { redis: spec.redis, node: spec.node },
});
const addresses = await node.listen();
process.stdout.write(`${JSON.stringify({ port: addresses.tls.port })}\n`);
process.on('SIGTERM', () => {
  void node
    .close()
    .then(() => store.close())
    .then(() => process.exit(0));
});

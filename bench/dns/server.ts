/**
 * The built-in DNS server on its own, as a child process of the bench: the fleet's zone with one
 * active region, UDP and TCP on a free port of 127.0.0.1. Prints one JSON line `{ "port": N }`
 * once it listens and closes on SIGTERM or SIGINT.
 *
 *   node --import tsx bench/dns/server.ts --zone Z --address A
 */
import { parseArgs } from 'node:util';
import { DnsEngine, DnsServer } from '../../src/dns/index.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { zone: { type: 'string' }, address: { type: 'string' } } });
  if (!values.zone || !values.address) throw new Error('usage: server.ts --zone Z --address A');
  const engine = new DnsEngine({
    state: {
      zone: values.zone,
      ttl: 5,
      nameservers: [{ name: 'ns', address: '127.0.0.1' }],
      active: { region: 'primary', address: values.address, epoch: 1 },
    },
  });
  const server = new DnsServer({ engine, host: '127.0.0.1', port: 0 });
  const { port } = await server.listen();
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});

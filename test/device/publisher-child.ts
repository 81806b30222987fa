/**
 * A device process for the crash tests: one or more devices (the options file holds one options
 * object or a list) publish as fast as they can with no broker reachable, `burst` messages at a time
 * without waiting between them (so a turn's batch holds many, across devices sharing a file), and
 * print `<thing> <messageId>` once each `publish` resolved (accepted), until the process is killed.
 */
import { readFileSync } from 'node:fs';
import { DeviceClient, type DeviceClientOptions } from '../../src/device/index.js';

const given = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as
  | DeviceClientOptions
  | DeviceClientOptions[];
const burst = Number(process.argv[3] ?? 1);

async function run(options: DeviceClientOptions): Promise<never> {
  const client = new DeviceClient(options);
  client.start();
  for (let seq = 0; ; seq += burst)
    await Promise.all(
      Array.from({ length: burst }, (_, i) =>
        client
          .publish(`devices/${options.thingName}/telemetry`, { seq: seq + i })
          .then(({ messageId }) => process.stdout.write(`${options.thingName} ${messageId}\n`)),
      ),
    );
}

await Promise.all((Array.isArray(given) ? given : [given]).map(run));

/**
 * A device process for the crash test: publishes as fast as it can with no broker reachable and
 * prints every message id once `publish` resolved (accepted), until it is killed.
 */
import { readFileSync } from 'node:fs';
import { DeviceClient, type DeviceClientOptions } from '../../src/device/index.js';

const options = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as DeviceClientOptions;
const client = new DeviceClient(options);
client.start();
for (let seq = 0; ; seq++) {
  const { messageId } = await client.publish(`devices/${options.thingName}/telemetry`, { seq });
  process.stdout.write(`${messageId}\n`);
}

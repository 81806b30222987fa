/**
 * A reconnect storm, run as a child process so it does not share the test's event loop: the
 * ceiling's minimal client (src/fleet/ceiling.ts) — `inFlight` devices at once, each connecting
 * (TCP, a full mutual-TLS handshake, MQTT CONNECT, CONNACK), closing and connecting again at once,
 * until `durationMs` has passed or it gets SIGTERM. No SDK, no backoff: the most a fleet coming
 * back at once can ask of a broker. Prints one JSON line of counts at the end.
 *
 * Usage: node --import tsx storm-child.ts OPTIONS.json
 */
import { readFileSync } from 'node:fs';
import { connectLoad } from '../../src/fleet/index.js';

export interface StormOptions {
  host: string;
  port: number;
  servername: string;
  caPem: string;
  devices: Array<{ clientId: string; certPem: string; keyPem: string }>;
  inFlight: number;
  durationMs: number;
  /** Gives up on one connection after this, ms. */
  connectTimeoutMs: number;
}

export interface StormResult {
  connacks: number;
  refused: number;
  errors: number;
  timeouts: number;
}

const options = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as StormOptions;
// SIGTERM ends the storm early: the counts so far are the result.
const stop = new AbortController();
process.once('SIGTERM', () => stop.abort());
const { connacks, refused, errors, timeouts } = await connectLoad(
  {
    ...options,
    identities: options.devices.map((d) => ({
      clientId: d.clientId,
      auth: { type: 'mtls', certPem: d.certPem, keyPem: d.keyPem },
    })),
    warmupMs: 0,
  },
  stop.signal,
);
const result: StormResult = { connacks, refused, errors, timeouts };
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));

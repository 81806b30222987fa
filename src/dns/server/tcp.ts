/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message is prefixed by its 2-byte length; a
 * connection carries any number of queries, answered in order; idle connections are closed.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { DnsEngine } from '../engine.js';
import type { DnsMetrics } from '../metrics.js';
import type { Timers } from '../timers.js';

/** Responses queued for a client that does not read beyond this many bytes end its connection. */
const MAX_PENDING_WRITE_BYTES = 512 * 1024;

export interface TcpConnectionOptions {
  readonly engine: DnsEngine;
  readonly idleTimeoutMs: number;
  readonly timers: Timers;
  readonly metrics: DnsMetrics | undefined;
  readonly logger: Logger | undefined;
}

/** Serves one accepted socket until either side ends it. */
export function serveTcpConnection(socket: Socket, options: TcpConnectionOptions): void {
  const { engine, timers, metrics } = options;
  let buffered: Buffer = Buffer.alloc(0);
  let idle: unknown;
  const arm = (): void => {
    if (idle !== undefined) timers.clearTimeout(idle);
    idle = timers.setTimeout(() => {
      idle = undefined;
      socket.end();
    }, options.idleTimeoutMs);
  };
  arm();

  socket.on('data', (chunk: Buffer) => {
    arm();
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2) {
      const length = buffered.readUInt16BE(0);
      if (buffered.length < 2 + length) break;
      const message = buffered.subarray(2, 2 + length);
      buffered = buffered.subarray(2 + length);
      const outcome = engine.resolve(message, 'tcp');
      metrics?.observe('tcp', outcome);
      if (outcome.type === 'drop') continue;
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(outcome.response.length);
      socket.write(Buffer.concat([prefix, outcome.response]));
      if (socket.writableLength > MAX_PENDING_WRITE_BYTES) {
        options.logger?.warn(
          { remote: socket.remoteAddress },
          'dns tcp client does not read its answers; closing',
        );
        socket.destroy();
        return;
      }
    }
    // Copy the partial message out so the chunk it came in can be collected.
    if (buffered.length > 0) buffered = Buffer.from(buffered);
  });
  socket.on('error', (error) => options.logger?.debug({ err: error }, 'dns tcp connection error'));
  socket.on('close', () => {
    if (idle !== undefined) timers.clearTimeout(idle);
    idle = undefined;
  });
}

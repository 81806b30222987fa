/**
 * The socket edges of the DNS engine: one UDP socket and one TCP server on the same address and
 * port, as resolvers expect to retry a truncated UDP answer over TCP at the same place.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { DnsEngine } from '../engine.js';
import { listenFailed } from '../errors.js';
import { DnsMetrics } from '../metrics.js';
import { systemTimers, type Timers } from '../timers.js';
import { serveTcpConnection } from './tcp.js';

/** Idle DNS-over-TCP connections are closed after this long, ms (RFC 7766 §6.2.3 suggests seconds). */
/** Bytes of UDP receive buffer the server asks for. */
const UDP_RECEIVE_BUFFER = 4 * 1024 * 1024;

export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 10_000;
/** Open DNS-over-TCP connections beyond this are closed on accept. */
export const DEFAULT_TCP_MAX_CONNECTIONS = 256;
/** With port 0, attempts at finding a port free for both UDP and TCP. */
const PORT_ATTEMPTS = 10;

export interface DnsServerOptions {
  readonly engine: DnsEngine;
  /** IPv4 or IPv6 literal to bind. Default 127.0.0.1. */
  readonly host?: string;
  /** UDP and TCP port; 0 picks one that is free for both. Default 0. */
  readonly port?: number;
  /** Close a TCP connection after this many ms without a query. Default 10000. */
  readonly tcpIdleTimeoutMs?: number;
  /** Most simultaneous TCP connections. Default 256. */
  readonly tcpMaxConnections?: number;
  /** Prometheus registry for `iotdr_dns_*` metrics; none when absent. */
  readonly registry?: Registry;
  readonly logger?: Logger;
  readonly timers?: Timers;
}

export interface DnsServerAddress {
  readonly host: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

export class DnsServer {
  readonly #options: DnsServerOptions;
  readonly #metrics: DnsMetrics | undefined;
  readonly #sockets = new Set<Socket>();
  #udp: UdpSocket | undefined;
  #tcp: Server | undefined;
  #address: DnsServerAddress | undefined;

  constructor(options: DnsServerOptions) {
    this.#options = options;
    this.#metrics = options.registry ? new DnsMetrics(options.registry) : undefined;
  }

  get engine(): DnsEngine {
    return this.#options.engine;
  }

  /** Open DNS-over-TCP connections. */
  get tcpConnections(): number {
    return this.#sockets.size;
  }

  /** Where the server listens; undefined before `listen()`. */
  get address(): DnsServerAddress | undefined {
    return this.#address;
  }

  async listen(): Promise<DnsServerAddress> {
    if (this.#address) return this.#address;
    const host = this.#options.host ?? '127.0.0.1';
    const wanted = this.#options.port ?? 0;
    let lastError: unknown;
    for (let attempt = 0; attempt < (wanted === 0 ? PORT_ATTEMPTS : 1); attempt++) {
      // A fleet resolving at once (a failover) sends thousands of queries in a burst: a larger
      // receive buffer (the kernel caps it at net.core.rmem_max) keeps them from being dropped.
      const udp = createSocket({
        type: isIP(host) === 6 ? 'udp6' : 'udp4',
        recvBufferSize: UDP_RECEIVE_BUFFER,
      });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(wanted, host, () => {
            udp.off('error', reject);
            resolve();
          });
        });
        const port = udp.address().port;
        const tcp = await this.#listenTcp(host, port);
        this.#attachUdp(udp);
        this.#udp = udp;
        this.#tcp = tcp;
        this.#address = { host, port, family: isIP(host) === 6 ? 'IPv6' : 'IPv4' };
        this.#options.logger?.info(this.#address, 'dns server listening');
        return this.#address;
      } catch (error) {
        lastError = error;
        await new Promise<void>((resolve) => udp.close(() => resolve())).catch(() => undefined);
      }
    }
    throw listenFailed(host, wanted, lastError);
  }

  async close(): Promise<void> {
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = undefined;
    this.#tcp = undefined;
    this.#address = undefined;
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all([
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined,
      tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
    ]);
  }

  #attachUdp(udp: UdpSocket): void {
    udp.on('message', (message, remote) => {
      const outcome = this.#options.engine.resolve(message, 'udp');
      this.#metrics?.observe('udp', outcome);
      if (outcome.type === 'drop') return;
      udp.send(outcome.response, remote.port, remote.address, (error) => {
        if (error) this.#options.logger?.debug({ err: error }, 'dns udp send failed');
      });
    });
    udp.on('error', (error) => this.#options.logger?.warn({ err: error }, 'dns udp socket error'));
  }

  #listenTcp(host: string, port: number): Promise<Server> {
    const max = this.#options.tcpMaxConnections ?? DEFAULT_TCP_MAX_CONNECTIONS;
    const server = createServer((socket) => {
      if (this.#sockets.size >= max) {
        this.#metrics?.rejected();
        socket.destroy();
        return;
      }
      this.#sockets.add(socket);
      this.#metrics?.connections(this.#sockets.size);
      socket.once('close', () => {
        this.#sockets.delete(socket);
        this.#metrics?.connections(this.#sockets.size);
      });
      serveTcpConnection(socket, {
        engine: this.#options.engine,
        idleTimeoutMs: this.#options.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS,
        timers: this.#options.timers ?? systemTimers,
        metrics: this.#metrics,
        logger: this.#options.logger,
      });
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }
}

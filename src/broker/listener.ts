import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import type { Clock, Logger } from '../common/index.js';
import type { HandshakeGate } from './handshakes.js';
import type { BrokerMetrics } from './metrics.js';
import type { ConnectionRateLimiter } from './rate-limit.js';
import type { ConnectionMeta, Transport } from './session.js';

/** How long a running handshake holds its admission slot at most, ms. */
export const HANDSHAKE_SLOT_MS = 1000;

export interface ListenerOptions {
  transport: Transport;
  host: string;
  port: number;
  /** Server certificate and key (PEM). */
  certPem: string;
  keyPem: string;
  /** CA named in the CertificateRequest (mTLS only); any issuer is accepted, the registry decides. */
  caPem: string;
  /** TLS handshake deadline, ms. */
  handshakeTimeoutMs: number;
  /** The listen backlog (see BrokerLimits.listenBacklog). */
  backlog: number;
  limiter: ConnectionRateLimiter;
  /** Remote addresses the limit does not apply to: the region's own (its health probe). */
  exempt: ReadonlySet<string>;
  /** Admission of handshakes, shared by the broker's listeners. */
  handshakes: HandshakeGate;
  clock: Clock;
  metrics: BrokerMetrics;
  logger: Logger;
  /** Receives each connection once TLS is up. */
  onSecure(socket: TLSSocket, meta: ConnectionMeta): void;
}

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * A TCP listener that does TLS itself: the rate limit is checked at accept, before any TLS work,
 * and mutual TLS asks for a client certificate without judging its chain, because devices may
 * present certificates of registered CAs or self-signed registered ones. The handshake still
 * proves the client holds the certificate's key; the registry decides the rest.
 */
export class TlsListener {
  readonly #options: ListenerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Per address: when a rate-limit refusal was last logged, and how many were not logged since. */
  readonly #floodLog = new Map<string, { at: number; suppressed: number }>();
  #closed = false;

  constructor(options: ListenerOptions) {
    this.#options = options;
    const context = createSecureContext({
      cert: options.certPem,
      key: options.keyPem,
      ...(options.transport === 'mtls' ? { ca: [options.caPem] } : {}),
    });
    this.#server = createServer({ pauseOnConnect: false }, (raw) => this.#accept(raw, context));
  }

  async listen(): Promise<ListenAddress> {
    this.#server.listen({
      port: this.#options.port,
      host: this.#options.host,
      backlog: this.#options.backlog,
    });
    await Promise.race([
      once(this.#server, 'listening'),
      once(this.#server, 'error').then(([error]) => {
        throw error;
      }),
    ]);
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('listener has no TCP address');
    return { host: address.address, port: address.port };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#options.handshakes.close();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    if (this.#server.listening) await closed;
  }

  #accept(raw: Socket, context: ReturnType<typeof createSecureContext>): void {
    const { metrics, logger, transport } = this.#options;
    const address = raw.remoteAddress ?? 'unknown';
    if (this.#closed) {
      raw.destroy();
      return;
    }
    metrics.accepted.inc({ listener: transport });
    if (!this.#options.exempt.has(address) && !this.#options.limiter.take(address)) {
      metrics.refusals.inc({ reason: 'rate_limited' });
      // A flood must not become a flood of log lines: one per address per second, with the count.
      const now = this.#options.clock.now();
      const last = this.#floodLog.get(address);
      if (last === undefined || now - last.at >= 1000) {
        if (this.#floodLog.size >= 10_000) this.#floodLog.clear();
        const refused = (last?.suppressed ?? 0) + 1;
        this.#floodLog.set(address, { at: now, suppressed: 0 });
        logger.info({ reason: 'rate_limited', address, listener: transport, refused }, 'refused');
      } else {
        last.suppressed++;
      }
      raw.destroy();
      return;
    }
    this.#sockets.add(raw);
    // MQTT answers are small and latency-bound (CONNACK, PUBACK): Nagle would hold them for the
    // client's delayed ACK, some 40 ms each.
    raw.setNoDelay(true);
    raw.once('close', () => this.#sockets.delete(raw));
    raw.on('error', () => raw.destroy());
    const admitted = this.#options.handshakes.admit(
      raw,
      () => this.#handshake(raw, context, address),
      this.#options.exempt.has(address),
    );
    if (!admitted) {
      metrics.refusals.inc({ reason: 'overloaded' });
      raw.destroy();
    }
  }

  /** The TLS handshake of an admitted connection; tells the gate once, however it ends. */
  #handshake(raw: Socket, context: ReturnType<typeof createSecureContext>, address: string): void {
    const { metrics, logger, transport } = this.#options;
    let ended = false;
    const release = () => {
      if (ended) return;
      ended = true;
      this.#options.handshakes.done();
    };
    if (raw.destroyed) {
      release();
      return;
    }
    raw.once('close', release);
    // A handshake that stalls (a slow or hostile client) gives its slot up after HANDSHAKE_SLOT_MS
    // and goes on outside the count, until its own timeout.
    setTimeout(release, HANDSHAKE_SLOT_MS).unref();
    const tls = new TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      requestCert: transport === 'mtls',
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      fail(new Error('TLS handshake timed out'));
    }, this.#options.handshakeTimeoutMs);
    timer.unref();
    const fail = (error: Error) => {
      clearTimeout(timer);
      release();
      metrics.refusals.inc({ reason: 'tls_handshake' });
      logger.debug({ reason: 'tls_handshake', address, err: error.message }, 'refused');
      tls.destroy();
      raw.destroy();
    };
    tls.once('error', fail);
    tls.once('secure', () => {
      clearTimeout(timer);
      release();
      tls.off('error', fail);
      const meta: ConnectionMeta = { transport, address };
      if (transport === 'mtls') {
        const der = tls.getPeerCertificate(false)?.raw;
        if (der !== undefined && der.length > 0)
          meta.certificateId = createHash('sha256').update(der).digest('hex');
      }
      this.#options.onSecure(tls, meta);
    });
  }
}

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import type { Clock, Logger } from '../common/index.js';
import type { HandshakeGate } from './handshakes.js';
import type { HelloPeek } from './hello.js';
import type { BrokerMetrics } from './metrics.js';
import { peekClientHello } from './peek.js';
import type { ConnectionRateLimiter } from './rate-limit.js';
import type { ConnectionMeta, Transport } from './session.js';
import { TicketContexts, type TicketKeySchedule } from './tickets.js';

/** How long a running handshake holds its admission slot at most, ms. */
export const HANDSHAKE_SLOT_MS = 1000;

/**
 * OpenSSL resumes a session only in the context it was made in, and refuses a resumption outright
 * (an internal-error alert, the handshake fails) when a server that asks for client certificates
 * has no context set. Node's tls.Server defaults it to a hash of the process's arguments, which
 * differs between processes; here it is fixed, one per listener kind, so every broker process of
 * every region resumes the other's sessions, and a token session is never resumed as an mTLS one.
 */
const SESSION_ID_CONTEXTS: Readonly<Record<Transport, string>> = {
  mtls: 'iotdr-mqtt-mtls',
  token: 'iotdr-mqtt-token',
};

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
  /** Session ticket keys, the same in every broker that shares the secret. */
  tickets: TicketKeySchedule;
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
  readonly #contexts: TicketContexts;
  #closed = false;

  constructor(options: ListenerOptions) {
    this.#options = options;
    this.#contexts = new TicketContexts(options.tickets, (ticketKeys, sessionTimeout) =>
      createSecureContext({
        cert: options.certPem,
        key: options.keyPem,
        ...(options.transport === 'mtls' ? { ca: [options.caPem] } : {}),
        ticketKeys,
        sessionIdContext: SESSION_ID_CONTEXTS[options.transport],
        sessionTimeout,
      }),
    );
    this.#server = createServer({ pauseOnConnect: false }, (raw) => this.#accept(raw));
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

  #accept(raw: Socket): void {
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
      () => this.#handshake(raw, address),
      this.#options.exempt.has(address),
    );
    if (!admitted) {
      metrics.refusals.inc({ reason: 'overloaded' });
      raw.destroy();
    }
  }

  /**
   * The TLS handshake of an admitted connection; tells the gate once, however it ends. The
   * ClientHello is read first, to start TLS with the SecureContext holding the key of the ticket
   * it offers; the handshake timeout covers that read too.
   */
  #handshake(raw: Socket, address: string): void {
    const { metrics, logger } = this.#options;
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
    let tls: TLSSocket | undefined;
    let stopPeek = () => {};
    const fail = (error: Error) => {
      clearTimeout(timer);
      stopPeek();
      release();
      metrics.refusals.inc({ reason: 'tls_handshake' });
      logger.debug({ reason: 'tls_handshake', address, err: error.message }, 'refused');
      tls?.destroy();
      raw.destroy();
    };
    const timer = setTimeout(() => {
      fail(new Error('TLS handshake timed out'));
    }, this.#options.handshakeTimeoutMs);
    timer.unref();
    stopPeek = peekClientHello(raw, {
      hello: (found) => {
        const secured = () => {
          clearTimeout(timer);
          release();
          tls?.off('error', fail);
        };
        tls = this.#startTls(raw, found, address, { secured, fail });
      },
      gone: () => fail(new Error('connection closed before its ClientHello')),
    });
  }

  /** Starts TLS over the socket in the context the ClientHello's ticket asks for. */
  #startTls(
    raw: Socket,
    found: HelloPeek,
    address: string,
    on: { secured: () => void; fail: (error: Error) => void },
  ): TLSSocket {
    const { metrics, transport } = this.#options;
    const context = this.#contexts.select(found.type === 'ticket' ? found.keyName : undefined);
    const tls = new TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      requestCert: transport === 'mtls',
      rejectUnauthorized: false,
    });
    tls.once('error', on.fail);
    tls.once('secure', () => {
      on.secured();
      const resumed = tls.isSessionReused();
      metrics.handshakes.inc({ listener: transport, session: resumed ? 'resumed' : 'full' });
      const meta: ConnectionMeta = { transport, address };
      if (transport === 'mtls') {
        // A resumed session carries the certificate of its full handshake (OpenSSL keeps it in the
        // ticket), so the registry judges it at CONNECT as it judges a new one. Without one, no
        // certificateId: the engine refuses the CONNECT (no_client_certificate); resuming never
        // skips the check.
        const der = tls.getPeerCertificate(false)?.raw;
        if (der !== undefined && der.length > 0)
          meta.certificateId = createHash('sha256').update(der).digest('hex');
      }
      this.#options.onSecure(tls, meta);
    });
    return tls;
  }
}

import { Duplex } from 'node:stream';

/**
 * A duplex in front of a client's socket that reads each MQTT fixed header as bytes arrive and
 * ends the connection as soon as a packet announces a remaining length over the limit, before its
 * body is buffered: mqtt-packet's parser has no size cap and would hold the whole packet (up to
 * 256 MiB, the protocol's maximum) in memory first. Everything else passes through unchanged.
 */
export class PacketSizeGuard extends Duplex {
  readonly #socket: Duplex;
  readonly #maxRemaining: number;
  readonly #onViolation: (reason: string) => void;
  /** 0: expecting a fixed header's first byte; 1: reading the remaining length; 2: in a body. */
  #state: 0 | 1 | 2 = 0;
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #bodyLeft = 0;

  constructor(socket: Duplex, maxRemaining: number, onViolation: (reason: string) => void) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#maxRemaining = maxRemaining;
    this.#onViolation = onViolation;
    socket.on('data', (chunk: Buffer) => {
      const problem = this.#inspect(chunk);
      if (problem !== undefined) {
        this.#onViolation(problem);
        this.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', (error) => this.destroy(error));
  }

  /** Walks the chunk through the header state machine; returns why it must close, if it must. */
  #inspect(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 2) {
        const take = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= take;
        i += take;
        if (this.#bodyLeft === 0) this.#state = 0;
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.#state === 0) {
        this.#state = 1;
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
        continue;
      }
      // [MQTT-2.2.3] remaining length: up to four bytes, 7 bits each, high bit = more follow.
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      this.#lengthBytes++;
      if (byte & 0x80) {
        if (this.#lengthBytes >= 4) return 'malformed remaining length';
        continue;
      }
      if (this.#length > this.#maxRemaining) {
        return `packet of ${this.#length} bytes exceeds the limit of ${this.#maxRemaining}`;
      }
      this.#bodyLeft = this.#length;
      this.#state = this.#bodyLeft === 0 ? 0 : 2;
    }
    return undefined;
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#socket.destroyed) {
      callback(new Error('connection closed'));
      return;
    }
    this.#socket.write(chunk, encoding, callback);
  }

  /**
   * Aedes writes a packet in pieces (header, topic, payload): corked, they leave as one TLS record
   * and one socket write instead of one each.
   */
  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    if (this.#socket.destroyed) {
      callback(new Error('connection closed'));
      return;
    }
    this.#socket.cork();
    const last = chunks.length - 1;
    chunks.forEach(({ chunk, encoding }, i) => {
      if (i === last) this.#socket.write(chunk, encoding, callback);
      else this.#socket.write(chunk, encoding);
    });
    this.#socket.uncork();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy();
    callback(error);
  }
}

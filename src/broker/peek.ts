/**
 * Reads a connection's ClientHello off the raw TCP socket before TLS starts, and puts every byte
 * read back (`unshift`) for the TLS socket made next: Node's TLSSocket feeds what the socket holds
 * buffered to OpenSSL before it reads on. The bytes are judged by hello.ts alone.
 */
import type { Socket } from 'node:net';
import { type HelloPeek, peekTicket } from './hello.js';

export interface PeekHandlers {
  /** The ClientHello was read (or is not worth waiting for); its bytes are back in the socket. */
  hello(found: Exclude<HelloPeek, { type: 'more' }>): void;
  /** The client closed or ended before a decision. */
  gone(): void;
}

/**
 * Starts reading; calls one handler once, later (never from within this call). There is no
 * deadline here: the listener's handshake timeout covers the read and calls the returned `stop`,
 * which detaches without calling either handler. What is held is bounded by hello.ts's ceilings.
 */
export function peekClientHello(raw: Socket, handlers: PeekHandlers): () => void {
  let chunks: Buffer[] = [];
  let size = 0;
  let atLeast = 1;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    raw.off('data', onData);
    raw.off('end', onGone);
    raw.off('close', onGone);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.length;
    // Judged only once enough has come: a hello sent a byte at a time is not parsed a byte at a time.
    if (size < atLeast) return;
    const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
    chunks = [bytes];
    const found = peekTicket(bytes);
    if (found.type === 'more') {
      atLeast = found.atLeast;
      return;
    }
    stop();
    // Out of flowing mode first, so the bytes put back wait for the TLS socket instead of being emitted.
    raw.pause();
    raw.unshift(bytes);
    handlers.hello(found);
  };
  const onGone = () => {
    if (stopped) return;
    stop();
    handlers.gone();
  };
  raw.on('data', onData);
  raw.once('end', onGone);
  raw.once('close', onGone);
  return stop;
}

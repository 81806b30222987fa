/**
 * Which session ticket a TLS ClientHello offers, read from the first bytes a client sends, before
 * TLS starts: the listener picks the SecureContext whose ticket key sealed it (see tickets.ts).
 * Bytes in, answer out; the bytes come from the network and are hostile, so nothing here throws,
 * nothing is allocated by a length the bytes announce, and every length is checked against both
 * the bytes present and a ceiling. Anything unexpected answers `none`: TLS then starts with the
 * current context and OpenSSL judges the ClientHello itself.
 */

/** TLS record content type of handshake messages (RFC 8446 §5.1). */
const CONTENT_HANDSHAKE = 22;
/** HandshakeType client_hello (RFC 8446 §4). */
const CLIENT_HELLO = 1;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
/** A record's fragment is at most 2^14 bytes [RFC 8446 §5.1]. */
const MAX_FRAGMENT_BYTES = 16_384;
/** `session_ticket` [RFC 5077 §3.2]: a TLS 1.2 client's ticket, whole, as the extension's data. */
const EXT_SESSION_TICKET = 35;
/** `pre_shared_key` [RFC 8446 §4.2.11]: a TLS 1.3 client's tickets as PSK identities. */
const EXT_PRE_SHARED_KEY = 41;

/** A ClientHello longer than this is not read ahead (TLS still gets it). Real ones are under 2 KiB. */
export const MAX_CLIENT_HELLO_BYTES = 16_384;
/** A ClientHello split over more records than this is not read ahead. Real ones come in one. */
export const MAX_CLIENT_HELLO_RECORDS = 4;
/** Node's tickets (OpenSSL's format) begin with the 16-byte name of the key that sealed them. */
export const TICKET_KEY_NAME_BYTES = 16;

export type HelloPeek =
  /** What came so far is a valid beginning; nothing can be said before `atLeast` bytes in all. */
  | { type: 'more'; atLeast: number }
  /** The ClientHello offers a ticket sealed by the key named `keyName`. */
  | { type: 'ticket'; keyName: Buffer; extension: 'pre_shared_key' | 'session_ticket' }
  /** No ticket to look up: none offered, or not a ClientHello this reads. */
  | { type: 'none'; why: 'no ticket' | 'not a ClientHello' | 'malformed' | 'too large' };

/** Thrown inside this module only, by a read past the end of a complete message; never escapes. */
class Malformed extends Error {}

/** Bounds-checked reads over one complete message. */
class Reader {
  readonly #bytes: Uint8Array;
  #at: number;
  readonly #end: number;

  constructor(bytes: Uint8Array, at = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#at = at;
    this.#end = end;
  }

  get remaining(): number {
    return this.#end - this.#at;
  }

  u8(): number {
    this.#need(1);
    return this.#bytes[this.#at++] as number;
  }

  u16(): number {
    return (this.u8() << 8) | this.u8();
  }

  skip(n: number): void {
    this.#need(n);
    this.#at += n;
  }

  /** A reader over the next `n` bytes (a vector's body); this one moves past them. */
  sub(n: number): Reader {
    this.#need(n);
    const inner = new Reader(this.#bytes, this.#at, this.#at + n);
    this.#at += n;
    return inner;
  }

  /** A copy of the next `n` bytes (at most TICKET_KEY_NAME_BYTES are ever asked for). */
  copy(n: number): Buffer {
    this.#need(n);
    const out = Buffer.from(this.#bytes.subarray(this.#at, this.#at + n));
    this.#at += n;
    return out;
  }

  #need(n: number): void {
    if (n < 0 || this.#at + n > this.#end) throw new Malformed();
  }
}

type Assembled = { type: 'hello'; body: Uint8Array } | Extract<HelloPeek, { type: 'more' | 'none' }>;

/**
 * The handshake message's length from its header, once its first 4 bytes are in: undefined before,
 * `none` when it is not a ClientHello or longer than the ceiling (judged at once, not after
 * waiting for all it announces).
 */
function handshakeLength(
  parts: readonly Uint8Array[],
): number | undefined | Extract<HelloPeek, { type: 'none' }> {
  const head = Buffer.concat(parts).subarray(0, HANDSHAKE_HEADER_BYTES);
  if (head.length < HANDSHAKE_HEADER_BYTES) return undefined;
  if (head[0] !== CLIENT_HELLO) return { type: 'none', why: 'not a ClientHello' };
  const length = head.readUIntBE(1, 3);
  return length > MAX_CLIENT_HELLO_BYTES ? { type: 'none', why: 'too large' } : length;
}

/**
 * The first handshake message's body, once every record that carries it is in `bytes`. A
 * ClientHello may span records [RFC 8446 §5.1]; at most MAX_CLIENT_HELLO_RECORDS are read.
 */
function assembleHandshake(bytes: Uint8Array): Assembled {
  const fragments: Uint8Array[] = [];
  let have = 0;
  let needed: number | undefined;
  let at = 0;
  for (let record = 0; record < MAX_CLIENT_HELLO_RECORDS; record++) {
    // The first byte alone tells a TLS client from anything else: no need to wait for more.
    if (bytes.length > at && bytes[at] !== CONTENT_HANDSHAKE)
      return { type: 'none', why: 'not a ClientHello' };
    if (bytes.length < at + RECORD_HEADER_BYTES) return { type: 'more', atLeast: at + RECORD_HEADER_BYTES };
    // legacy_record_version is 0x03XX in every TLS version [RFC 8446 §5.1].
    if (bytes[at + 1] !== 3) return { type: 'none', why: 'not a ClientHello' };
    const length = ((bytes[at + 3] as number) << 8) | (bytes[at + 4] as number);
    // Zero-length handshake fragments are forbidden [RFC 8446 §5.1].
    if (length === 0 || length > MAX_FRAGMENT_BYTES) return { type: 'none', why: 'malformed' };
    const end = at + RECORD_HEADER_BYTES + length;
    // What of this record is in (all of it, or the part that came so far).
    const fragment = bytes.subarray(at + RECORD_HEADER_BYTES, Math.min(end, bytes.length));
    if (needed === undefined) {
      const announced = handshakeLength([...fragments, fragment]);
      if (typeof announced === 'object') return announced;
      if (announced !== undefined) needed = HANDSHAKE_HEADER_BYTES + announced;
    }
    if (bytes.length < end) return { type: 'more', atLeast: end };
    fragments.push(fragment);
    have += length;
    at = end;
    if (needed !== undefined && have >= needed) {
      // Joined from bytes that arrived, never sized by a length read from them.
      const handshake = fragments.length === 1 ? fragment : Buffer.concat(fragments, have);
      return { type: 'hello', body: handshake.subarray(HANDSHAKE_HEADER_BYTES, needed) };
    }
  }
  return { type: 'none', why: 'too large' };
}

/** The ticket in a complete ClientHello body [RFC 8446 §4.1.2; RFC 5246 §7.4.1.2]. */
function ticketIn(body: Uint8Array): HelloPeek {
  const hello = new Reader(body);
  hello.skip(2 + 32); // legacy_version, random
  hello.skip(hello.u8()); // legacy_session_id
  hello.skip(hello.u16()); // cipher_suites
  hello.skip(hello.u8()); // legacy_compression_methods
  // A TLS 1.2 ClientHello may end here: no extensions, so no ticket.
  if (hello.remaining === 0) return { type: 'none', why: 'no ticket' };
  const extensions = hello.sub(hello.u16());
  let ticket: Buffer | undefined;
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.sub(extensions.u16());
    if (type === EXT_PRE_SHARED_KEY) {
      const keyName = firstPskKeyName(data);
      return keyName === undefined
        ? { type: 'none', why: 'no ticket' }
        : { type: 'ticket', keyName, extension: 'pre_shared_key' };
    }
    // An empty session_ticket asks for a ticket and offers none [RFC 5077 §3.2].
    if (type === EXT_SESSION_TICKET && data.remaining >= TICKET_KEY_NAME_BYTES)
      ticket = data.copy(TICKET_KEY_NAME_BYTES);
  }
  return ticket === undefined
    ? { type: 'none', why: 'no ticket' }
    : { type: 'ticket', keyName: ticket, extension: 'session_ticket' };
}

/**
 * The key name of the first PSK identity: OfferedPsks { identities<7..2^16-1>; binders } with
 * PskIdentity { identity<1..2^16-1>; obfuscated_ticket_age } [RFC 8446 §4.2.11]. A client resuming
 * offers its newest ticket first; an identity shorter than a key name is no ticket of ours.
 */
function firstPskKeyName(data: Reader): Buffer | undefined {
  const identities = data.sub(data.u16());
  const identity = identities.sub(identities.u16());
  return identity.remaining >= TICKET_KEY_NAME_BYTES ? identity.copy(TICKET_KEY_NAME_BYTES) : undefined;
}

/**
 * What the bytes a client sent so far say about its session ticket: wait for more, the name of the
 * key that sealed its ticket, or nothing to look up. Never throws.
 */
export function peekTicket(bytes: Uint8Array): HelloPeek {
  try {
    const assembled = assembleHandshake(bytes);
    if (assembled.type !== 'hello') return assembled;
    return ticketIn(assembled.body);
  } catch {
    // Malformed, or a bug here: either way the current context and OpenSSL's own parser decide.
    return { type: 'none', why: 'malformed' };
  }
}

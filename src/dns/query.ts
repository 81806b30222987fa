/**
 * Turns the bytes of a query into something the engine can answer, or says why it cannot:
 * drop (not even a header, or not a query) or an error RCODE.
 */
import dnsPacket, { type OptAnswer } from 'dns-packet';
import { CD, HEADER_BYTES, OPCODE_QUERY, opcodeOf, QR, RCODE, RD } from './wire.js';

export interface Question {
  /** As asked, case preserved (the answer echoes it). */
  readonly name: string;
  /** Lowercase, for lookups (RFC 4343: DNS names compare case-insensitively, ASCII only). */
  readonly key: string;
  /** `A`, `AAAA`, … or `UNKNOWN_<n>` (dns-packet's names). */
  readonly type: string;
  readonly class: number;
  /** Length of the question on the wire, so the response can copy it verbatim. */
  readonly bytes: number;
}

export interface Edns {
  readonly udpPayloadSize: number;
  readonly version: number;
}

export type ParsedQuery =
  | { readonly kind: 'drop'; readonly reason: 'short' | 'response' }
  | { readonly kind: 'error'; readonly id: number; readonly flags: number; readonly rcode: number }
  | {
      readonly kind: 'query';
      readonly id: number;
      readonly flags: number;
      readonly question: Question;
      readonly edns: Edns | undefined;
    };

/**
 * Reads the question name from the wire ourselves: dns-packet joins labels with dots and decodes
 * them as UTF-8, so a label holding a dot or a non-ASCII byte would read as a different name. Such
 * a name cannot be one of ours and could not be echoed faithfully, so it is refused as FORMERR.
 */
function readName(buf: Buffer, offset: number): { labels: string[]; end: number } | undefined {
  const labels: string[] = [];
  let at = offset;
  for (;;) {
    const len = buf[at];
    if (len === undefined) return undefined;
    at += 1;
    if (len === 0) return { labels, end: at };
    // A compression pointer in the first name could only point into the header (RFC 1035 §4.1.4).
    if ((len & 0xc0) !== 0 || at + len > buf.length) return undefined;
    for (let i = at; i < at + len; i++) {
      const c = buf[i] as number;
      if (c <= 0x20 || c >= 0x7f || c === 0x2e) return undefined;
    }
    labels.push(buf.toString('latin1', at, at + len));
    at += len;
  }
}

export function parseQuery(buf: Buffer): ParsedQuery {
  if (buf.length < HEADER_BYTES) return { kind: 'drop', reason: 'short' };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  // Never answer a response: two servers could otherwise bounce packets forever.
  if ((flags & QR) !== 0) return { kind: 'drop', reason: 'response' };
  // Opcode, RD and CD are copied into the response (RFC 1035 §4.1.1, RFC 6840 §5.9).
  const keep = (flags & 0x7800) | (flags & RD) | (flags & CD);
  if (opcodeOf(flags) !== OPCODE_QUERY) return { kind: 'error', id, flags: keep, rcode: RCODE.NOTIMP };
  const formerr = { kind: 'error', id, flags: keep, rcode: RCODE.FORMERR } as const;

  let packet: ReturnType<typeof dnsPacket.decode>;
  try {
    packet = dnsPacket.decode(buf);
  } catch {
    return formerr;
  }
  // Trailing bytes mean the counts and the content disagree.
  if (dnsPacket.decode.bytes !== buf.length) return formerr;
  // RFC 9619: a query holds exactly one question.
  if (packet.questions?.length !== 1) return formerr;
  const name = readName(buf, HEADER_BYTES);
  if (!name || name.end + 4 > buf.length) return formerr;

  const opts = (packet.additionals ?? []).filter((a): a is OptAnswer => a.type === 'OPT');
  // RFC 6891 §6.1.1: more than one OPT, or an OPT not owned by the root, is a FORMERR.
  if (opts.length > 1 || (opts[0] && opts[0].name !== '.')) return formerr;
  const opt = opts[0];

  // dns-packet writes the root as '.'; an empty string would be sized wrongly.
  const qname = name.labels.length === 0 ? '.' : name.labels.join('.');
  return {
    kind: 'query',
    id,
    flags: keep,
    question: {
      name: qname,
      key: qname.toLowerCase(),
      type: packet.questions[0]?.type ?? 'UNKNOWN_0',
      class: buf.readUInt16BE(name.end + 2),
      bytes: name.end + 4 - HEADER_BYTES,
    },
    edns: opt ? { udpPayloadSize: opt.udpPayloadSize, version: opt.ednsVersion } : undefined,
  };
}

/** Encodes a response and fits it into the transport's size limit (RFC 1035 §4.2.1, RFC 6891 §7). */
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import type { Question } from './query.js';
import { AA, HEADER_BYTES, TC } from './wire.js';

export interface ResponseParts {
  readonly id: number;
  /** Opcode and RD bits copied from the query. */
  readonly flags: number;
  /** Full RCODE; values above 15 go into the OPT record's extended RCODE. */
  readonly rcode: number;
  readonly authoritative: boolean;
  readonly question?: Question;
  readonly answers?: Answer[];
  readonly authorities?: Answer[];
  readonly additionals?: Answer[];
  /** Present when the query had EDNS: our UDP payload size goes into the OPT we echo. */
  readonly edns?: { readonly udpPayloadSize: number };
}

function build(parts: ResponseParts, truncated: boolean): Packet {
  const additionals = truncated ? [] : [...(parts.additionals ?? [])];
  if (parts.edns) {
    additionals.push({
      name: '.',
      type: 'OPT',
      udpPayloadSize: parts.edns.udpPayloadSize,
      extendedRcode: parts.rcode >> 4,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options: [],
    });
  }
  const q = parts.question;
  return {
    type: 'response',
    id: parts.id,
    flags: parts.flags | (parts.authoritative ? AA : 0) | (truncated ? TC : 0) | (parts.rcode & 0xf),
    questions: q ? [{ name: q.name, type: q.type as 'A', class: 'IN' }] : [],
    answers: truncated ? [] : (parts.answers ?? []),
    authorities: truncated ? [] : (parts.authorities ?? []),
    additionals,
  };
}

/**
 * The response bytes, at most `limit` long. When the full answer does not fit, the response keeps
 * only the question and the OPT and sets TC, so the client retries over TCP (RFC 2181 §9: a partial
 * RRset must not be served as if it were whole).
 */
export function encodeResponse(
  query: Buffer,
  parts: ResponseParts,
  limit: number,
): { response: Buffer; truncated: boolean } {
  // dns-packet sets QR from `type: 'response'`.
  let response = encodeWithQuestion(query, build(parts, false), parts.question);
  let truncated = false;
  if (response.length > limit) {
    response = encodeWithQuestion(query, build(parts, true), parts.question);
    truncated = true;
  }
  return { response, truncated };
}

/** The question is copied from the query byte for byte: same case, same class, same type number. */
function encodeWithQuestion(query: Buffer, packet: Packet, question: Question | undefined): Buffer {
  const out = dnsPacket.encode(packet);
  if (question) query.copy(out, HEADER_BYTES, HEADER_BYTES, HEADER_BYTES + question.bytes);
  return out;
}

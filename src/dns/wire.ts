/** Header constants of RFC 1035 §4.1.1 and the extended RCODEs of RFC 6891 §6.1.3. */

export const HEADER_BYTES = 12;
export const QR = 0x8000;
export const AA = 0x0400;
export const TC = 0x0200;
export const RD = 0x0100;
export const CD = 0x0010;
export const OPCODE_QUERY = 0;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;
export type Rcode = keyof typeof RCODE;

/** Largest response over UDP without EDNS (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_LIMIT = 512;
/** Largest DNS message over TCP: the 2-byte length prefix (RFC 1035 §4.2.2). */
export const TCP_LIMIT = 65_535;
/**
 * UDP payload size we advertise and cap responses at, bytes. 1232 is the DNS Flag Day 2020 value:
 * it fits the IPv6 minimum MTU, so answers are never IP-fragmented.
 */
export const DEFAULT_UDP_PAYLOAD_SIZE = 1232;

export function opcodeOf(flags: number): number {
  return (flags >> 11) & 0xf;
}

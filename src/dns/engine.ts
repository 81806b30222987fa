/**
 * The authoritative DNS engine: a query's bytes in, a response's bytes out (or nothing: drop). It
 * owns no socket, so the UDP and TCP edges, the tests and the benchmark drive the same code.
 */
import type { Answer } from 'dns-packet';
import { type Clock, systemClock } from '../common/index.js';
import { ResponseCache } from './cache.js';
import { handlerFor, soaRecord } from './handlers/index.js';
import { parseQuery } from './query.js';
import { encodeResponse, type ResponseParts } from './respond.js';
import { type DnsState, type DnsStateInput, parseDnsState } from './state.js';
import { CLASSIC_UDP_LIMIT, DEFAULT_UDP_PAYLOAD_SIZE, RCODE, type Rcode, TCP_LIMIT } from './wire.js';
import { compileZone, inZone, type Zone } from './zone.js';

export type Transport = 'udp' | 'tcp';

export type DropReason = 'short' | 'response';

/** What became of one query; the edges send `response` and count the rest. */
export type Outcome =
  | {
      readonly type: 'answer';
      readonly response: Buffer;
      /** Query type (`A`, `UNKNOWN_65280`, …); `none` when the question could not be read. */
      readonly qtype: string;
      readonly rcode: Rcode;
      readonly truncated: boolean;
    }
  | { readonly type: 'drop'; readonly reason: DropReason };

export interface DnsEngineOptions {
  /** The first record state; later ones come through `setState`. */
  readonly state: DnsStateInput;
  /** Stamps `stateSince`. Default the system clock. */
  readonly clock?: Clock;
  /** UDP payload size advertised in our OPT and the most we send over UDP to EDNS clients, bytes. Default 1232, at least 512. */
  readonly udpPayloadSize?: number;
}

const RCODE_NAMES = new Map<number, Rcode>(Object.entries(RCODE).map(([k, v]) => [v, k as Rcode]));
const CLASS_IN = 1;
/** Zone transfers are not offered: the zone lives in the controller's state, not in secondaries. */
const TRANSFERS = new Set(['AXFR', 'IXFR']);
const FLEET_TYPES = new Set(['A', 'AAAA', 'TXT', 'ANY']);

export class DnsEngine {
  #state: DnsState;
  #zone: Zone;
  #since: number;
  readonly #clock: Clock;
  readonly #udpPayloadSize: number;
  readonly #cache = new ResponseCache();

  constructor(options: DnsEngineOptions) {
    this.#state = parseDnsState(options.state);
    this.#zone = compileZone(this.#state);
    this.#clock = options.clock ?? systemClock;
    this.#since = this.#clock.now();
    this.#udpPayloadSize = Math.min(
      Math.max(options.udpPayloadSize ?? DEFAULT_UDP_PAYLOAD_SIZE, 512),
      65_535,
    );
  }

  /** Replaces the record state; invalid input throws `ValidationError` and changes nothing. */
  setState(input: DnsStateInput): DnsState {
    const state = parseDnsState(input);
    const zone = compileZone(state);
    this.#state = state;
    this.#zone = zone;
    this.#cache.clear();
    this.#since = this.#clock.now();
    return state;
  }

  get state(): DnsState {
    return this.#state;
  }

  /**
   * When the served state was last set (ms since the epoch): a server that lost its controller keeps
   * serving the last decision, and its health can say since when.
   */
  get stateSince(): number {
    return this.#since;
  }

  /** The response to send, or undefined to drop the packet. */
  answer(query: Buffer, transport: Transport): Buffer | undefined {
    const outcome = this.resolve(query, transport);
    return outcome.type === 'answer' ? outcome.response : undefined;
  }

  resolve(query: Buffer, transport: Transport): Outcome {
    const cached = this.#cache.get(query, transport);
    if (cached) return cached;
    const outcome = this.#resolve(query, transport);
    if (outcome.type === 'answer') this.#cache.set(query, transport, outcome);
    return outcome;
  }

  #resolve(query: Buffer, transport: Transport): Outcome {
    const parsed = parseQuery(query);
    if (parsed.kind === 'drop') return { type: 'drop', reason: parsed.reason };
    if (parsed.kind === 'error') {
      return this.#finish(
        query,
        { id: parsed.id, flags: parsed.flags, rcode: parsed.rcode, authoritative: false },
        'none',
        CLASSIC_UDP_LIMIT,
      );
    }
    const { question, edns } = parsed;
    const base = {
      id: parsed.id,
      flags: parsed.flags,
      question,
      ...(edns ? { edns: { udpPayloadSize: this.#udpPayloadSize } } : {}),
    };
    const limit =
      transport === 'tcp'
        ? TCP_LIMIT
        : edns
          ? Math.max(CLASSIC_UDP_LIMIT, Math.min(edns.udpPayloadSize, this.#udpPayloadSize))
          : CLASSIC_UDP_LIMIT;
    const finish = (parts: Omit<ResponseParts, 'id' | 'flags' | 'question' | 'edns'>): Outcome =>
      this.#finish(query, { ...base, ...parts }, question.type, limit);

    // RFC 6891 §6.1.3: we speak EDNS version 0 only.
    if (edns && edns.version > 0) return finish({ rcode: RCODE.BADVERS, authoritative: false });
    if (question.type === 'OPT') return finish({ rcode: RCODE.FORMERR, authoritative: false });
    const zone = this.#zone;
    // Not a resolver: names outside the zone, and classes other than IN, are refused.
    if (question.class !== CLASS_IN || !inZone(zone, question.key)) {
      return finish({ rcode: RCODE.REFUSED, authoritative: false });
    }
    if (TRANSFERS.has(question.type)) return finish({ rcode: RCODE.REFUSED, authoritative: false });

    const node = zone.nodes.get(question.key);
    const negative = (): Answer[] => [soaRecord(zone, zone.origin, zone.negativeTtl)];
    if (!node && !zone.emptyNonTerminals.has(question.key)) {
      return finish({ rcode: RCODE.NXDOMAIN, authoritative: true, authorities: negative() });
    }
    // Before the first decision there is no right answer; SERVFAIL sends resolvers to another server.
    if (node?.fleet && zone.pending && FLEET_TYPES.has(question.type)) {
      return finish({ rcode: RCODE.SERVFAIL, authoritative: false });
    }
    const result = handlerFor(question.type)({ zone, name: question.name, key: question.key, node });
    if (result.answers.length === 0) {
      // NODATA (RFC 2308 §2.2): NOERROR, empty answer, SOA in the authority section.
      return finish({ rcode: RCODE.NOERROR, authoritative: true, authorities: negative() });
    }
    return finish({
      rcode: RCODE.NOERROR,
      authoritative: true,
      answers: result.answers,
      additionals: result.additionals,
    });
  }

  #finish(query: Buffer, parts: ResponseParts, qtype: string, limit: number): Outcome {
    const { response, truncated } = encodeResponse(query, parts, limit);
    return { type: 'answer', response, qtype, rcode: RCODE_NAMES.get(parts.rcode) ?? 'SERVFAIL', truncated };
  }
}

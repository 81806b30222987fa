/**
 * Encoded responses by query bytes. Two queries that differ only in their ID get the same
 * response but for the ID, and devices ask the same few questions over and over, so the engine
 * skips decoding and encoding for a repeat. Cleared on every state change.
 */
import type { Outcome, Transport } from './engine.js';

/** Entries kept before the cache starts over; bounds memory against random names. */
const MAX_ENTRIES = 4096;
/** Queries longer than this are not cached (a normal query is well under 100 bytes). */
const MAX_QUERY_BYTES = 512;

type Answered = Extract<Outcome, { type: 'answer' }>;

export class ResponseCache {
  readonly #entries = new Map<string, Answered>();

  #key(query: Buffer, transport: Transport): string | undefined {
    if (query.length < 12 || query.length > MAX_QUERY_BYTES) return undefined;
    return transport + query.toString('latin1', 2);
  }

  get(query: Buffer, transport: Transport): Answered | undefined {
    const key = this.#key(query, transport);
    const hit = key === undefined ? undefined : this.#entries.get(key);
    if (!hit) return undefined;
    const response = Buffer.from(hit.response);
    response.writeUInt16BE(query.readUInt16BE(0), 0);
    return { ...hit, response };
  }

  set(query: Buffer, transport: Transport, outcome: Answered): void {
    const key = this.#key(query, transport);
    if (key === undefined) return;
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
    // A copy: the caller owns the buffer it was handed.
    this.#entries.set(key, { ...outcome, response: Buffer.from(outcome.response) });
  }

  clear(): void {
    this.#entries.clear();
  }
}

import type { Answer } from 'dns-packet';
import type { Zone, ZoneNode } from '../zone.js';

/** A name in the zone that exists (owns records, or is an empty non-terminal). */
export interface Lookup {
  readonly zone: Zone;
  /** The question's name as asked: answers echo its case. */
  readonly name: string;
  /** Lowercase name. */
  readonly key: string;
  readonly node: ZoneNode | undefined;
}

/** Records for the answer section and the additional section; no answers means NODATA. */
export interface HandlerResult {
  readonly answers: Answer[];
  readonly additionals: Answer[];
}

export type Handler = (lookup: Lookup) => HandlerResult;

export const NO_DATA: HandlerResult = Object.freeze({ answers: [], additionals: [] }) as HandlerResult;

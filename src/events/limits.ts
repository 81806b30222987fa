/**
 * What every event bus accepts and returns at most, whatever its engine: the same event is valid
 * or refused on SQLite and on JetStream alike.
 */
import { invalidEvent } from './errors.js';
import type { NewEvent } from './types.js';

/** Longest long-poll wait, in ms. */
export const MAX_WAIT_MS = 30_000;
/** Longest event id and topic, in characters. */
export const MAX_EVENT_ID_LENGTH = 256;
export const MAX_EVENT_TOPIC_LENGTH = 4096;
/** Most events one read returns, whatever the caller asks for. */
export const MAX_READ_BATCH = 10_000;

/** Refuses an event the bus cannot store (a bug of its producer, never device input). */
export function checkEvent(event: NewEvent): void {
  if (typeof event.id !== 'string' || event.id.length === 0 || event.id.length > MAX_EVENT_ID_LENGTH)
    throw invalidEvent(`an event id is 1 to ${MAX_EVENT_ID_LENGTH} characters`, 'id');
  if (typeof event.topic !== 'string' || event.topic.length > MAX_EVENT_TOPIC_LENGTH)
    throw invalidEvent(`a topic is at most ${MAX_EVENT_TOPIC_LENGTH} characters`, 'topic');
  if (!Number.isSafeInteger(event.time)) throw invalidEvent('time is integer ms since the epoch', 'time');
}

/** A read's limit as a count from 1 to MAX_READ_BATCH (a caller's slip never reads the whole log). */
export function readLimit(limit: number): number {
  return Math.max(1, Math.min(Math.floor(limit) || 1, MAX_READ_BATCH));
}

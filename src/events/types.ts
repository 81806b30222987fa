/**
 * The region's event bus: an append-only log of events, read from an offset. The interface is what
 * a NATS JetStream stream also offers (a subject's sequence numbers as offsets, Nats-Msg-Id for
 * de-duplication, max_age / max_bytes retention), so a second implementation can sit behind it.
 */

/**
 * Where an event came from; more kinds (shadow updates, lifecycle events) may follow. `health` is
 * the region's own probe of the bus (the `events` checkpoint): consumers of device data skip it.
 */
export type EventSource = { type: 'rule'; rule: string } | { type: 'health' };

/**
 * The message payload: JSON stays JSON (`{type:'json', value}`) when the bytes are UTF-8 text that
 * parses as JSON; anything else is kept byte for byte as base64 (`{type:'base64', data}`).
 */
export type EventPayload = { type: 'json'; value: unknown } | { type: 'base64'; data: string };

export interface BusEvent {
  /** Globally unique: the device's message id when it sent one, else a UUIDv7. */
  id: string;
  /** Position in this region's log: 1, 2, 3… gap-free in commit order. */
  offset: number;
  region: string;
  /** When the message was received, in ms since the epoch. */
  time: number;
  source: EventSource;
  topic: string;
  thingName?: string;
  clientId?: string;
  payload: EventPayload;
}

/** What a producer appends; the bus assigns the offset and its region. */
export type NewEvent = Omit<BusEvent, 'offset' | 'region'>;

export interface ReadOptions {
  /** First offset wanted (inclusive). 0 or 1 means from the beginning. */
  from: number;
  /** Most events returned. */
  limit: number;
  /** With no event at or after `from`, wait up to this long (ms) for one. */
  waitMs?: number;
  /** Ends a wait early (client gone, shutdown). */
  signal?: AbortSignal;
}

export interface ReadResult {
  events: BusEvent[];
  /** The offset to read from next. */
  next: number;
  /** Oldest offset still kept (lastOffset + 1 when the log is empty). */
  firstOffset: number;
  /** Newest offset ever assigned (0 before the first append). */
  lastOffset: number;
  /**
   * Set when events the reader asked for were removed by retention: the answer starts at
   * `firstOffset`, and offsets `requested`..`firstOffset - 1` are gone.
   */
  gap?: { requested: number; firstOffset: number };
}

export interface AppendResult {
  offset: number;
  /** False when an event with this id was already in the log (nothing was written). */
  appended: boolean;
}

export interface RetentionResult {
  /** Events removed. */
  removed: number;
  firstOffset: number;
}

export interface BusStats {
  firstOffset: number;
  lastOffset: number;
  /** Events kept. */
  count: number;
  /** Approximate stored size of the kept events, in bytes. */
  bytes: number;
}

export interface EventBus {
  readonly region: string;
  /**
   * Appends one event durably: once the promise resolves the event survives a crash. An event
   * whose id is already in the log is not written again; the existing offset is returned.
   */
  append(event: NewEvent): Promise<AppendResult>;
  read(options: ReadOptions): Promise<ReadResult>;
  firstOffset(): Promise<number>;
  lastOffset(): Promise<number>;
  stats(): Promise<BusStats>;
  /** Applies the retention limits now. */
  enforceRetention(): Promise<RetentionResult>;
  /** Called after each commit with the newest offset (wakes streams and long polls). */
  onAppend(listener: (lastOffset: number) => void): () => void;
  close(): Promise<void>;
}

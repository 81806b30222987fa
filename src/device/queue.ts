import { DeviceError, QueueFullError } from './errors.js';
import {
  openQueueFile,
  type QueuedMessage,
  type QueueFile,
  type QueueFileSettings,
  releaseQueueFile,
} from './queue-file.js';

export type { QueuedMessage } from './queue-file.js';

/**
 * Bytes of unacknowledged messages a device keeps in memory besides the file, so sending needs no
 * read of the file: the typical queue (a few messages waiting for their PUBACK) costs no select
 * per send, and a backlog larger than this (a long outage) is read from the file as it is sent.
 */
const MEMORY_BYTES = 256 * 1024;
/** What a message held in memory costs beyond its payload and topic: the object, its id, the map entry. */
const MESSAGE_OVERHEAD_BYTES = 200;

const cost = (topic: string, payload: Buffer) => payload.length + topic.length + MESSAGE_OVERHEAD_BYTES;
const ignore = () => {};

/**
 * The device's QoS1 outbox on disk: SQLite in WAL mode, `synchronous = FULL` by default, so a
 * message is accepted (`append` resolves) only once its insert is committed and fsynced — it then
 * survives a process kill or a power cut (`normal`: a process kill). Rows leave only on PUBACK.
 * Writes are committed together for every device of the file, once per event-loop turn or per
 * `commitIntervalMs` (QueueFile). Several devices may keep their queues in one file (a gateway, a
 * simulator: one connection per file and thread, rows kept apart by the device's name); one client
 * per device at a time.
 */
export class MessageQueue {
  readonly #file: QueueFile;
  readonly #device: string;
  readonly #max: number;
  /**
   * Every committed, unacknowledged message, in order, while they fit in MEMORY_BYTES; undefined
   * while they do not, and sends read the file. Map order is seq order: commits come in seq order.
   */
  #memory: Map<number, QueuedMessage> | undefined;
  #memoryBytes = 0;
  /** Committed rows not yet acknowledged. */
  #committed: number;
  /** Appended, not yet committed: not accepted yet, but counted against `maxMessages`. */
  #pending = 0;
  /** Acknowledged while read from the file, delete not committed yet: a second ack is not counted. */
  readonly #removing = new Set<number>();
  #closed = false;

  constructor(path: string, device: string, maxMessages: number, settings: QueueFileSettings) {
    try {
      this.#file = openQueueFile(path, settings);
    } catch (error) {
      throw new DeviceError(
        'IOTDR_DEVICE_QUEUE_STORE',
        `cannot open the device queue ${path}: ${String(error)}`,
        {
          status: 500,
          cause: error,
        },
      );
    }
    this.#device = device;
    this.#max = maxMessages;
    const { n, bytes } = this.#file.size(device);
    this.#committed = n;
    if (bytes + n * MESSAGE_OVERHEAD_BYTES <= MEMORY_BYTES) {
      this.#memory = new Map();
      for (const m of n === 0 ? [] : this.#file.read(device, 0, n)) this.#remember(m);
    }
  }

  /** Messages accepted (or being committed) and not yet acknowledged. */
  get depth(): number {
    return this.#committed + this.#pending;
  }

  /**
   * Writes a message with the other writes of this turn; resolves once it is committed (durably,
   * as `synchronous` says), and only then is it accepted. Refuses, writing nothing, when full.
   */
  append(messageId: string, topic: string, payload: Buffer, acceptedAt: number): Promise<QueuedMessage> {
    if (this.depth >= this.#max) throw new QueueFullError(this.#max);
    this.#pending++;
    return new Promise((resolve, reject) => {
      this.#file.insert({
        device: this.#device,
        messageId,
        topic,
        payload,
        acceptedAt,
        committed: (seq) => {
          this.#pending--;
          this.#committed++;
          const message: QueuedMessage = { seq, messageId, topic, payload };
          this.#remember(message);
          resolve(message);
        },
        failed: (error) => {
          this.#pending--;
          reject(
            new DeviceError(
              'IOTDR_DEVICE_QUEUE_STORE',
              `cannot write to the device queue: ${String(error)}`,
              {
                status: 500,
                cause: error,
              },
            ),
          );
        },
      });
    });
  }

  #remember(message: QueuedMessage): void {
    if (this.#memory === undefined) return;
    const bytes = cost(message.topic, message.payload);
    if (this.#memoryBytes + bytes > MEMORY_BYTES) {
      // Past the budget the file is the only copy until the backlog is gone.
      this.#memory = undefined;
      this.#memoryBytes = 0;
      return;
    }
    this.#memory.set(message.seq, message);
    this.#memoryBytes += bytes;
  }

  /** Up to `limit` committed messages after `seq`, in order. */
  after(seq: number, limit: number): QueuedMessage[] {
    const memory = this.#memory;
    if (memory === undefined) return this.#file.read(this.#device, seq, limit);
    const out: QueuedMessage[] = [];
    if (limit <= 0) return out;
    for (const m of memory.values()) {
      if (m.seq <= seq) continue;
      out.push(m);
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Removes an acknowledged message: deleted with the turn's other writes, and, when that commit
   * has no accepted message in it, without an fsync of its own (`synchronous = NORMAL`): a delete
   * lost to a power cut only sends that message again, which consumers de-duplicate by its id.
   */
  remove(seq: number): void {
    if (this.#closed) return;
    const memory = this.#memory;
    if (memory !== undefined) {
      // In memory the count is exact: only a message held is acknowledged once.
      const message = memory.get(seq);
      if (message === undefined) return;
      memory.delete(seq);
      this.#memoryBytes -= cost(message.topic, message.payload);
      this.#committed--;
      this.#file.delete(seq, ignore);
      return;
    }
    if (this.#removing.has(seq)) return;
    this.#removing.add(seq);
    this.#committed--;
    this.#file.delete(seq, (removed) => {
      this.#removing.delete(seq);
      if (this.#memory !== undefined) return;
      // A row already gone (never expected) must not make the depth drift; the backlog gone, the
      // next messages are held in memory again.
      if (!removed) this.#committed++;
      else if (this.#committed === 0) this.#memory = new Map();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#memory = undefined;
    releaseQueueFile(this.#file);
  }
}

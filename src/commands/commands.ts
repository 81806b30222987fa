/**
 * Commands to devices. A command is a registry entity (kind `command`), so every region has it:
 * whichever region the device is connected to delivers it, on `$iotdr/things/{thing}/commands`
 * (QoS 1; the id is in the payload), and takes the device's answer on
 * `$iotdr/things/{thing}/commands/{id}/reply`. A command issued in the primary before a failover is
 * delivered from the secondary once the device reconnects there.
 *
 * pending → delivered → succeeded | failed, or timed-out when no answer came before the deadline.
 * While delivered and unanswered it is sent again every `retryAfterMs`, at most `maxAttempts`
 * times in all; a device recognises a repeat by the command id.
 */
import { z } from 'zod';
import { type Clock, type Logger, systemClock, uuidv7 } from '../common/index.js';
import { type EntityRecord, KIND, type RegistryService } from '../registry/index.js';
import {
  CNC_KIND,
  type CommandDoc,
  commandDocSchema,
  commandNameSchema,
  FINAL_COMMAND_STATES,
  MAX_COMMAND_PAYLOAD_BYTES,
  MAX_COMMAND_RESULT_BYTES,
} from './documents.js';
import { UnknownCommandError, UnknownDeviceError } from './errors.js';
import { pruneEntities } from './prune.js';

/** Default time a device has to answer, ms. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
export const MAX_COMMAND_TIMEOUT_MS = 7 * 24 * 3600 * 1000;
/** Default deliveries at most (the first one included). */
export const DEFAULT_COMMAND_MAX_ATTEMPTS = 3;
/** How often open commands are checked for a retry or the deadline, ms. */
export const COMMAND_SWEEP_MS = 250;
/** How long a finished command is kept (then its region deletes it), ms. */
export const COMMAND_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** How often finished commands past their retention are removed, ms. */
export const COMMAND_PRUNE_MS = 3600 * 1000;

export const COMMANDS_TOPIC_PREFIX = '$iotdr/things/';

export const issueCommandBody = z
  .object({
    name: commandNameSchema,
    payload: z
      .unknown()
      .optional()
      .refine(
        (v) => JSON.stringify(v ?? null).length <= MAX_COMMAND_PAYLOAD_BYTES,
        `at most ${MAX_COMMAND_PAYLOAD_BYTES} bytes of JSON`,
      ),
    timeoutMs: z.number().int().min(1000).max(MAX_COMMAND_TIMEOUT_MS).default(DEFAULT_COMMAND_TIMEOUT_MS),
    maxAttempts: z.number().int().min(1).max(20).default(DEFAULT_COMMAND_MAX_ATTEMPTS),
  })
  .strict();
export type IssueCommandInput = z.infer<typeof issueCommandBody>;

/** What a device answers on `.../commands/{id}/reply`. */
const replySchema = z
  .object({
    status: z.enum(['succeeded', 'failed']),
    result: z
      .unknown()
      .optional()
      .refine((v) => JSON.stringify(v ?? null).length <= MAX_COMMAND_RESULT_BYTES, 'result too large'),
    error: z.string().max(1000).optional(),
  })
  .strict();

export type Command = CommandDoc & { version: number };

/** The broker side the dispatcher needs (RegionBroker satisfies it). */
export interface CommandBroker {
  publish(topic: string, payload: string, options: { qos: 1 }): Promise<void>;
  isConnected(thingName: string): boolean;
  onMessage(
    listener: (message: { topic: string; payload: Buffer; thingName?: string }) => unknown,
  ): () => void;
  onSubscribe(listener: (event: { thingName?: string; topics: string[] }) => void): () => void;
}

export interface CommandServiceOptions {
  service: RegistryService;
  broker: CommandBroker;
  logger?: Logger;
  clock?: Clock;
  sweepMs?: number;
}

/**
 * Where a thing's commands go: one exact topic per thing (the command id is in the message), so
 * each device holds an exact subscription, never a pattern. On a broker spread over hosts every
 * distinct wildcard filter is a Redis pattern each publish is matched against (docs/broker.md).
 */
function commandTopic(thingName: string): string {
  return `${COMMANDS_TOPIC_PREFIX}${thingName}/commands`;
}

const REPLY_TOPIC = /^\$iotdr\/things\/([^/]+)\/commands\/([0-9a-f-]{36})\/reply$/;

function parseDoc(doc: unknown, version: number): Command | undefined {
  const parsed = commandDocSchema.safeParse(doc);
  return parsed.success ? { ...parsed.data, version } : undefined;
}

function parseRecord(record: EntityRecord | undefined): Command | undefined {
  if (!record || record.deleted || record.doc === null) return undefined;
  return parseDoc(record.doc, record.version);
}

const isFinal = (c: CommandDoc) => FINAL_COMMAND_STATES.includes(c.state);

export class CommandService {
  readonly #service: RegistryService;
  readonly #broker: CommandBroker;
  readonly #logger: Logger | undefined;
  readonly #clock: Clock;
  readonly #sweepMs: number;
  /** Open (not final) commands by id: the sweep's working set, kept by every commit. */
  readonly #open = new Map<string, Command>();
  /** Deliveries in progress, so one command is not sent twice by two triggers at once. */
  readonly #sending = new Set<string>();
  readonly #stops: Array<() => void> = [];
  #timer: NodeJS.Timeout | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;

  constructor(options: CommandServiceOptions) {
    this.#service = options.service;
    this.#broker = options.broker;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#sweepMs = options.sweepMs ?? COMMAND_SWEEP_MS;
  }

  /** Loads the open commands, follows every commit (local and replicated), takes device replies. */
  async start(): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await this.#service.store.list(CNC_KIND.command, {
        limit: 1000,
        ...(after === undefined ? {} : { after }),
      });
      for (const record of page) {
        const command = parseRecord(record);
        if (command && !isFinal(command)) this.#open.set(command.commandId, command);
      }
      if (page.length < 1000) break;
      after = page[page.length - 1]?.key;
    }
    this.#stops.push(
      this.#service.onCommit((changes) => {
        for (const change of changes) {
          if (change.kind !== CNC_KIND.command) continue;
          const command = change.after === null ? undefined : parseDoc(change.after, change.version);
          if (!command || isFinal(command)) {
            this.#open.delete(change.key);
            continue;
          }
          this.#open.set(command.commandId, command);
          if (command.state === 'pending') void this.#deliver(command.commandId, 'issued');
        }
      }),
      this.#broker.onMessage((message) => this.#reply(message)),
      this.#broker.onSubscribe((event) => {
        if (!event.thingName || !event.topics.some((t) => t.endsWith('/commands'))) return;
        // A device (re)subscribing has moved or restarted: what is open for it goes now.
        for (const command of this.#open.values())
          if (command.thingName === event.thingName) void this.#deliver(command.commandId, 'subscribed');
      }),
    );
    this.#schedule();
    this.#pruneTimer = setInterval(() => {
      this.prune().catch((error) => this.#logger?.warn({ err: error }, 'cannot prune finished commands'));
    }, COMMAND_PRUNE_MS);
    this.#pruneTimer.unref();
  }

  /** Deletes this region's commands finished more than COMMAND_RETENTION_MS ago. */
  prune(): Promise<number> {
    const before = this.#clock.now() - COMMAND_RETENTION_MS;
    return pruneEntities(this.#service, CNC_KIND.command, (doc) => {
      const command = commandDocSchema.safeParse(doc);
      return (
        command.success &&
        command.data.region === this.#service.region &&
        command.data.completedAt !== null &&
        Date.parse(command.data.completedAt) < before
      );
    });
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#pruneTimer = undefined;
    for (const stop of this.#stops.splice(0)) stop();
  }

  /** Records a command for a device and delivers it when the device is connected here. */
  async issue(thingName: string, input: IssueCommandInput, createdBy: string): Promise<Command> {
    await this.#requireDevice(thingName);
    const now = this.#clock.now();
    const commandId = uuidv7(now);
    const doc: CommandDoc = {
      commandId,
      thingName,
      name: input.name,
      payload: input.payload ?? null,
      state: 'pending',
      region: this.#service.region,
      createdBy,
      createdAt: new Date(now).toISOString(),
      deadlineAt: new Date(now + input.timeoutMs).toISOString(),
      attempts: 0,
      maxAttempts: input.maxAttempts,
      retryAfterMs: Math.max(1000, Math.floor(input.timeoutMs / input.maxAttempts)),
      deliveredAt: null,
      deliveredBy: null,
      completedAt: null,
      result: null,
      error: null,
    };
    const version = await this.#service.transaction((tx) =>
      this.#service.writeEntity(tx, CNC_KIND.command, commandId, thingName, { ...doc }, undefined),
    );
    return { ...doc, version };
  }

  async get(commandId: string): Promise<Command> {
    const command = parseRecord(await this.#service.store.get(CNC_KIND.command, commandId));
    if (!command) throw new UnknownCommandError(commandId);
    return command;
  }

  /** A device's commands, newest first (ids are UUIDv7, so by time). */
  async list(thingName: string, limit: number): Promise<Command[]> {
    await this.#requireDevice(thingName);
    const rows = await this.#service.store.list(CNC_KIND.command, { ref: thingName, limit: 10_000 });
    return rows
      .map(parseRecord)
      .filter((c): c is Command => c !== undefined)
      .sort((a, b) => b.commandId.localeCompare(a.commandId))
      .slice(0, limit);
  }

  async #requireDevice(thingName: string): Promise<void> {
    const record = await this.#service.store.get(KIND.thing, thingName);
    if (!record || record.deleted) throw new UnknownDeviceError(thingName);
  }

  /** Open commands (for health and tests). */
  get openCount(): number {
    return this.#open.size;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      void this.#sweep().finally(() => {
        if (this.#timer) this.#schedule();
      });
    }, this.#sweepMs);
    this.#timer.unref();
  }

  async #sweep(): Promise<void> {
    const now = this.#clock.now();
    for (const command of [...this.#open.values()]) {
      if (Date.parse(command.deadlineAt) <= now) {
        await this.#update(command.commandId, (c) => ({
          ...c,
          state: 'timed-out',
          completedAt: new Date(now).toISOString(),
          error: `no answer from the device within ${Date.parse(c.deadlineAt) - Date.parse(c.createdAt)} ms (${c.attempts} deliveries)`,
        })).catch((error) => this.#logger?.error({ err: error }, 'cannot time a command out'));
        continue;
      }
      const due =
        command.state === 'pending' ||
        (command.state === 'delivered' &&
          command.attempts < command.maxAttempts &&
          command.deliveredAt !== null &&
          Date.parse(command.deliveredAt) + command.retryAfterMs <= now);
      if (due) await this.#deliver(command.commandId, command.state === 'pending' ? 'pending' : 'retry');
    }
  }

  /** Sends the command to the device if it is connected here, and records the delivery. */
  async #deliver(commandId: string, why: string): Promise<void> {
    const command = this.#open.get(commandId);
    if (!command || this.#sending.has(commandId)) return;
    if (!this.#broker.isConnected(command.thingName)) return;
    if (command.attempts >= command.maxAttempts && why !== 'subscribed') return;
    this.#sending.add(commandId);
    try {
      const now = this.#clock.now();
      const updated = await this.#update(commandId, (c) => ({
        ...c,
        state: 'delivered',
        attempts: c.attempts + 1,
        deliveredAt: new Date(now).toISOString(),
        deliveredBy: this.#service.region,
      }));
      if (!updated) return;
      const message = {
        commandId,
        name: updated.name,
        payload: updated.payload,
        createdAt: updated.createdAt,
        deadlineAt: updated.deadlineAt,
        attempt: updated.attempts,
      };
      await this.#broker.publish(commandTopic(updated.thingName), JSON.stringify(message), {
        qos: 1,
      });
      this.#logger?.debug(
        { commandId, thing: updated.thingName, attempt: updated.attempts, why },
        'command delivered',
      );
    } catch (error) {
      this.#logger?.warn({ err: (error as Error).message, commandId }, 'command delivery failed; will retry');
    } finally {
      this.#sending.delete(commandId);
    }
  }

  /** A device's answer: validated, matched to its own command, recorded once. */
  async #reply(message: { topic: string; payload: Buffer; thingName?: string }): Promise<void> {
    const match = REPLY_TOPIC.exec(message.topic);
    if (!match) return;
    const [, thingName, commandId] = match;
    if (!thingName || !commandId || message.thingName !== thingName) return;
    let body: unknown;
    try {
      body = JSON.parse(message.payload.toString('utf8'));
    } catch {
      this.#logger?.warn({ commandId, thing: thingName }, 'command reply is not JSON; ignored');
      return;
    }
    const reply = replySchema.safeParse(body);
    if (!reply.success) {
      this.#logger?.warn(
        { commandId, thing: thingName, issues: reply.error.issues.map((i) => i.message) },
        'command reply is not {status, result?, error?}; ignored',
      );
      return;
    }
    const now = this.#clock.now();
    await this.#update(commandId, (c) =>
      c.thingName !== thingName
        ? undefined
        : {
            ...c,
            state: reply.data.status,
            completedAt: new Date(now).toISOString(),
            result: reply.data.result ?? null,
            error: reply.data.error ?? null,
            // An answer proves delivery even when this region did not record it (a region that
            // went down after delivering).
            deliveredAt: c.deliveredAt ?? new Date(now).toISOString(),
            deliveredBy: c.deliveredBy ?? this.#service.region,
          },
    );
  }

  /** Changes an open command in one transaction; a final command is left as it is. */
  async #update(
    commandId: string,
    change: (c: CommandDoc) => CommandDoc | undefined,
  ): Promise<Command | undefined> {
    return this.#service.transaction(async (tx) => {
      const record = await tx.get(CNC_KIND.command, commandId, { includeDeleted: true });
      const current = parseRecord(record);
      if (!current || isFinal(current)) return undefined;
      const { version: _v, ...doc } = current;
      const next = change(doc);
      if (!next) return undefined;
      const version = await this.#service.writeEntity(
        tx,
        CNC_KIND.command,
        commandId,
        next.thingName,
        { ...next },
        record,
      );
      return { ...next, version };
    });
  }
}

import { type Timers, uuidv7 } from '../common/index.js';
import { DeviceError } from './errors.js';
import type { DeviceEvent } from './events.js';
import { type CommandReply, commandSchema, type DeviceCommand, thingTopics } from './topics.js';

/** The sections of a shadow update (docs/shadows.md); `null` removes a key or a section. */
export interface ShadowState {
  desired?: Record<string, unknown> | null;
  reported?: Record<string, unknown> | null;
}

export type CommandHandler = (command: DeviceCommand) => CommandReply | Promise<CommandReply>;

type Handler = (topic: string, payload: Buffer) => void;

interface Pending {
  topic: string;
  body: string;
  resolve(value: Record<string, unknown>): void;
  reject(error: Error): void;
  timer: unknown;
}

/** What the requests need of the client: its subscriptions, its live connection, its events. */
export interface RequestsOptions {
  thingName: string;
  timers: Timers;
  timeoutMs: number;
  subscribe(filter: string, handler: Handler): Promise<() => Promise<void>>;
  /** Publishes QoS 1 on the live connection; false when there is none. */
  send(topic: string, payload: string): boolean;
  emit(event: DeviceEvent): void;
}

/** Commands remembered for de-duplication; the oldest are forgotten first. */
const SEEN_COMMANDS = 1000;

/**
 * Commands and shadow requests over the device's connection, the same in every region: shadow
 * requests are sent again after a reconnect until answered (matched by clientToken), and a command
 * delivered twice (the region re-sends until answered, and again after a move) runs once.
 */
export class DeviceRequests {
  readonly #topics: ReturnType<typeof thingTopics>;
  readonly #o: RequestsOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #seen = new Map<string, CommandReply | undefined>();
  #shadowSubscribed: Promise<void> | undefined;
  #closed = false;
  #hasCommandHandler = false;

  constructor(options: RequestsOptions) {
    this.#o = options;
    this.#topics = thingTopics(options.thingName);
  }

  async onCommand(handler: CommandHandler): Promise<() => Promise<void>> {
    // One handler: with two, the second would see every command as a repeat of the first's.
    if (this.#hasCommandHandler)
      throw new DeviceError(
        'IOTDR_DEVICE_COMMAND_HANDLER_SET',
        'onCommand already has a handler; remove it first',
      );
    this.#hasCommandHandler = true;
    try {
      const remove = await this.#o.subscribe(
        this.#topics.commands,
        (topic, payload) => void this.#command(topic, payload, handler),
      );
      return async () => {
        this.#hasCommandHandler = false;
        await remove();
      };
    } catch (error) {
      this.#hasCommandHandler = false;
      throw error;
    }
  }

  async #command(topic: string, payload: Buffer, handler: CommandHandler): Promise<void> {
    if (topic !== this.#topics.commands) return;
    let command: DeviceCommand;
    try {
      command = commandSchema.parse(JSON.parse(payload.toString()));
    } catch {
      return; // Not a command the region wrote.
    }
    const commandId = command.commandId;
    const duplicate = this.#seen.has(commandId);
    this.#o.emit({
      type: 'command',
      commandId,
      name: command.name,
      attempt: command.attempt ?? 1,
      duplicate,
    });
    if (duplicate) {
      // Answered before: the answer may have been lost with the connection, so send it again.
      const reply = this.#seen.get(commandId);
      if (reply) this.#o.send(this.#topics.reply(commandId), JSON.stringify(reply));
      return;
    }
    this.#seen.set(commandId, undefined);
    if (this.#seen.size > SEEN_COMMANDS) this.#seen.delete(this.#seen.keys().next().value as string);
    let reply: CommandReply;
    try {
      const r = await handler(command);
      reply = {
        status: r.status === 'failed' ? 'failed' : 'succeeded',
        ...(r.result === undefined ? {} : { result: r.result }),
        ...(r.error === undefined ? {} : { error: String(r.error).slice(0, 1000) }),
      };
    } catch (error) {
      reply = {
        status: 'failed',
        error: (error instanceof Error ? error.message : String(error)).slice(0, 1000),
      };
    }
    if (this.#closed) return;
    this.#seen.set(commandId, reply);
    // Not connected now: the region delivers the command again, and the repeat sends this answer.
    this.#o.send(this.#topics.reply(commandId), JSON.stringify(reply));
  }

  getShadow(): Promise<Record<string, unknown>> {
    return this.#request(this.#topics.shadowGet, {});
  }

  updateShadow(state: ShadowState, options: { version?: number }): Promise<Record<string, unknown>> {
    if (
      state === null ||
      typeof state !== 'object' ||
      (state.desired === undefined && state.reported === undefined)
    )
      return Promise.reject(
        new DeviceError(
          'IOTDR_DEVICE_INVALID_SHADOW',
          'updateShadow takes { desired?, reported? } with at least one',
        ),
      );
    return this.#request(this.#topics.shadowUpdate, {
      state,
      ...(options.version === undefined ? {} : { version: options.version }),
    });
  }

  async #request(topic: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.#shadowSubscribed ??= this.#subscribeShadow().catch((error) => {
      this.#shadowSubscribed = undefined;
      throw error;
    });
    await this.#shadowSubscribed;
    if (this.#closed) throw new DeviceError('IOTDR_DEVICE_CLOSED', 'the device client is closed');
    const clientToken = uuidv7(Date.now());
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        topic,
        body: JSON.stringify({ ...body, clientToken }),
        resolve,
        reject,
        timer: this.#o.timers.setTimeout(() => {
          this.#pending.delete(clientToken);
          reject(
            new DeviceError('IOTDR_DEVICE_TIMEOUT', `no answer to ${topic} within ${this.#o.timeoutMs} ms`, {
              status: 504,
            }),
          );
        }, this.#o.timeoutMs),
      };
      this.#pending.set(clientToken, pending);
      this.#o.send(pending.topic, pending.body);
    });
  }

  async #subscribeShadow(): Promise<void> {
    for (const filter of this.#topics.shadowReplies)
      await this.#o.subscribe(filter, (topic, payload) => this.#shadowReply(topic, payload));
  }

  #shadowReply(topic: string, payload: Buffer): void {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(payload.toString());
    } catch {
      return;
    }
    const token = typeof body?.clientToken === 'string' ? body.clientToken : undefined;
    const pending = token === undefined ? undefined : this.#pending.get(token);
    if (!pending || !token) return;
    this.#pending.delete(token);
    this.#o.timers.clearTimeout(pending.timer);
    if (topic.endsWith('/accepted')) pending.resolve(body);
    else
      pending.reject(
        new DeviceError(
          'IOTDR_DEVICE_SHADOW_REJECTED',
          `the shadow service refused the request: ${String(body.message ?? '')} (${String(body.errorCode ?? body.code)})`,
          { status: typeof body.code === 'number' ? body.code : 400, details: body },
        ),
      );
  }

  /** After a (re)connect: requests not answered yet are sent again, with their clientToken. */
  resend(): void {
    for (const p of this.#pending.values()) this.#o.send(p.topic, p.body);
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#pending.values()) {
      this.#o.timers.clearTimeout(p.timer);
      p.reject(new DeviceError('IOTDR_DEVICE_CLOSED', 'the device client was closed before the answer came'));
    }
    this.#pending.clear();
  }
}

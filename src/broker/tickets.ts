/**
 * TLS session ticket keys shared by every broker of every region, rotated without coordination:
 * each period's key is derived (HKDF-SHA256) from one secret and the period's number, so every
 * process that holds the secret computes the same key for the same period. A device that moved
 * to the other region offers a ticket sealed there; this region's broker holds the same key.
 *
 * Node's SecureContext holds one 48-byte ticket key (16 bytes of name, 16 of HMAC key, 16 of AES
 * key), and OpenSSL discards a ticket whose name is not that key's. So there is one SecureContext
 * per period, and the listener picks the one whose key name the ClientHello's ticket carries
 * (hello.ts): the current period's, the previous one's (a ticket issued before the rotation), or
 * the next one's (issued by a process whose clock is a little ahead, at the boundary).
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import type { Clock } from '../common/index.js';
import { TICKET_KEY_NAME_BYTES } from './hello.js';

/** Random bytes in a new ticket secret; a shorter secret is refused. */
export const TICKET_SECRET_BYTES = 32;
/** How long one ticket key is used, by default: 24 h. */
export const DEFAULT_TICKET_ROTATE_MS = 24 * 3600 * 1000;
/**
 * The longest period: a ticket stays resumable for two periods, and TLS 1.3 caps a ticket's
 * lifetime at 7 days [RFC 8446 §4.6.1].
 */
export const MAX_TICKET_ROTATE_MS = 84 * 3600 * 1000;
/** The shortest period, 1 s, so a ticket's lifetime (two periods, in whole seconds) is never 0. */
export const MIN_TICKET_ROTATE_MS = 1000;
/** ticketKeys of tls.createSecureContext: name, HMAC key and AES key, 16 bytes each. */
const TICKET_KEYS_BYTES = 48;
/** Binds the derived keys to their use; a new derivation gets a new label. */
const HKDF_SALT = 'iotdr tls ticket keys v1';

/** A new secret as the text of its file: 32 random bytes, base64url. */
export function newTicketSecret(): string {
  return randomBytes(TICKET_SECRET_BYTES).toString('base64url');
}

/** The secret in a file's text (base64url); undefined when it is not at least 32 bytes of base64url. */
export function decodeTicketSecret(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(trimmed)) return undefined;
  const secret = Buffer.from(trimmed, 'base64url');
  return secret.length >= TICKET_SECRET_BYTES ? secret : undefined;
}

/**
 * The 48 ticket key bytes of one period. The period length is part of the derivation: brokers
 * configured with different periods share no key rather than keys of different times.
 */
export function ticketKeysOf(secret: Buffer, rotateMs: number, period: number): Buffer {
  return Buffer.from(
    hkdfSync('sha256', secret, HKDF_SALT, `period ${rotateMs} ${period}`, TICKET_KEYS_BYTES),
  );
}

/** Which period the clock is in, and each period's key, kept for the periods in use. */
export class TicketKeySchedule {
  readonly #secret: Buffer;
  readonly #rotateMs: number;
  readonly #clock: Clock;
  readonly #keys = new Map<number, Buffer>();

  constructor(options: { secret: Buffer; rotateMs: number; clock: Clock }) {
    this.#secret = Buffer.from(options.secret);
    this.#rotateMs = options.rotateMs;
    this.#clock = options.clock;
  }

  /** The period the clock is in now: whole periods since the epoch. */
  currentPeriod(): number {
    return Math.floor(this.#clock.now() / this.#rotateMs);
  }

  /** The period's 48 key bytes; the first 16 are its name, which begins every ticket it seals. */
  keysOf(period: number): Buffer {
    let keys = this.#keys.get(period);
    if (keys === undefined) {
      keys = ticketKeysOf(this.#secret, this.#rotateMs, period);
      this.#keys.set(period, keys);
      // Only the periods around now are ever asked for.
      for (const p of this.#keys.keys()) if (Math.abs(p - period) > 2) this.#keys.delete(p);
    }
    return keys;
  }

  /**
   * Seconds a session stays resumable (OpenSSL's session timeout, sent as the ticket's lifetime):
   * as long as its key is accepted, two periods.
   */
  get lifetimeSeconds(): number {
    return Math.floor((2 * this.#rotateMs) / 1000);
  }
}

/** Makes a listener's SecureContext around one period's ticket keys. */
export type ContextFactory = (ticketKeys: Buffer, sessionTimeoutSeconds: number) => SecureContext;

/** One listener's SecureContexts, one per period in use, made when first needed. */
export class TicketContexts {
  readonly #schedule: TicketKeySchedule;
  readonly #make: ContextFactory;
  readonly #contexts = new Map<number, SecureContext>();

  constructor(schedule: TicketKeySchedule, make: ContextFactory) {
    this.#schedule = schedule;
    this.#make = make;
  }

  /**
   * The context to start TLS with for a ClientHello whose ticket was sealed by the key named
   * `keyName` (undefined: no ticket). A ticket of the previous or the next period gets that
   * period's context; any other, or none, the current one: a full handshake and a new ticket.
   */
  select(keyName: Buffer | undefined): SecureContext {
    const current = this.#schedule.currentPeriod();
    if (keyName !== undefined) {
      for (const period of [current - 1, current + 1]) {
        if (this.#nameOf(period).equals(keyName)) return this.#contextOf(period, current);
      }
    }
    return this.#contextOf(current, current);
  }

  #nameOf(period: number): Buffer {
    return this.#schedule.keysOf(period).subarray(0, TICKET_KEY_NAME_BYTES);
  }

  #contextOf(period: number, current: number): SecureContext {
    let context = this.#contexts.get(period);
    if (context === undefined) {
      context = this.#make(this.#schedule.keysOf(period), this.#schedule.lifetimeSeconds);
      this.#contexts.set(period, context);
      for (const p of this.#contexts.keys()) if (Math.abs(p - current) > 1) this.#contexts.delete(p);
    }
    return context;
  }
}

/** What made a device leave its broker. */
export type MoveTrigger = 'notice' | 'disconnect' | 'dns' | 'connection-lost';

/** Why a connection ended: a move trigger, a refused CONNACK, or `close()`. */
export type DisconnectReason = MoveTrigger | 'closed';

/** A broker the device was connected to. `region` is undefined when neither TXT nor a notice named it. */
export interface Endpoint {
  region: string | undefined;
  address: string;
}

export type DeviceEvent =
  /**
   * CONNACK accepted. `resumed`: the TLS handshake resumed the session of an earlier connection
   * (to either region) instead of a full handshake with certificate verification and key exchange.
   */
  | { type: 'connected'; region: string | undefined; address: string; port: number; resumed: boolean }
  | {
      type: 'disconnected';
      reason: DisconnectReason;
      region: string | undefined;
      address: string;
      error?: string;
    }
  /** Reconnected somewhere else (another region, or another address) after `trigger`. */
  | {
      type: 'moved';
      from: string | undefined;
      to: string | undefined;
      fromAddress: string;
      toAddress: string;
      trigger: MoveTrigger;
    }
  /** A connect attempt failed (DNS, TCP, TLS, CONNACK refusal, timeout); the next one is in `delayMs`. */
  | {
      type: 'retry';
      attempt: number;
      delayMs: number;
      boundMs: number;
      error: string;
      code?: string | number;
    }
  | { type: 'queue'; depth: number }
  | { type: 'command'; commandId: string; name: string; attempt: number; duplicate: boolean }
  /** A failover notice was received; `acted` says whether it made the device move. */
  | { type: 'notice'; activeRegion: string; epoch: number; acted: boolean };

export type DeviceEventType = DeviceEvent['type'];
export type DeviceEventOf<T extends DeviceEventType> = Extract<DeviceEvent, { type: T }>;

/** Running totals since the client was made. */
export interface DeviceCounters {
  /** Successful CONNACKs. */
  connects: number;
  /** Successful CONNACKs on a resumed TLS session (a part of `connects`). */
  resumed: number;
  /** Moves, by what triggered them. */
  moves: Record<MoveTrigger, number>;
  /** Messages accepted by `publish` (written to the queue). */
  published: number;
  /** PUBACKs received for queued messages. */
  acked: number;
  /** Failed connect attempts (each followed by a backoff delay). */
  retries: number;
  /** Queued messages sent again on a new connection. */
  resent: number;
}

type Listener<T extends DeviceEventType> = (event: DeviceEventOf<T>) => void;

/** A small typed emitter: one listener set per event type; a throwing listener does not stop the client. */
export class DeviceEvents {
  readonly #listeners = new Map<DeviceEventType, Set<(event: DeviceEvent) => void>>();
  readonly #all = new Set<(event: DeviceEvent) => void>();

  on<T extends DeviceEventType>(type: T, listener: Listener<T>): () => void {
    let set = this.#listeners.get(type);
    if (!set) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    const l = listener as (event: DeviceEvent) => void;
    set.add(l);
    return () => set.delete(l);
  }

  onAny(listener: (event: DeviceEvent) => void): () => void {
    this.#all.add(listener);
    return () => this.#all.delete(listener);
  }

  emit(event: DeviceEvent): void {
    for (const l of [...(this.#listeners.get(event.type) ?? []), ...this.#all]) {
      try {
        l(event);
      } catch {
        // A listener's bug must not break reconnection or the queue.
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
    this.#all.clear();
  }
}

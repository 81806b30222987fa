/**
 * A message as the broker hands it to the rules engine. Structurally identical to the broker's own
 * type (declared here so the engine does not depend on the broker).
 */
export interface InboundMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  clientId: string;
  thingName?: string;
  /** The device's own message id, when it sent one (MQTT 5 user property or SDK envelope). */
  messageId?: string;
  /** When the broker received it, in ms since the epoch. */
  receivedAt: number;
}

/** Publishes a message through the region's broker (republish action). */
export type PublishFn = (
  topic: string,
  payload: Buffer,
  options: { qos: 0 | 1; retain: boolean },
) => Promise<void>;

/** Waits `ms` (backoff between HTTP attempts); resolves early when `signal` aborts. Injected in tests. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

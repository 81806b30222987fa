/** A message as the broker hands it to the rules engine (type only: no runtime dependency). */
export type { InboundMessage } from '../broker/index.js';

/** Publishes a message through the region's broker (republish action). */
export type PublishFn = (
  topic: string,
  payload: Buffer,
  options: { qos: 0 | 1; retain: boolean },
) => Promise<void>;

/** Waits `ms` (backoff between HTTP attempts); resolves early when `signal` aborts. Injected in tests. */
export { abortableSleep as realSleep, type Sleep } from '../common/index.js';

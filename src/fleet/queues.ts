/**
 * Where a simulated device keeps its queue: one of a few files shared by devices, chosen by its
 * name, so the same device finds its unacknowledged messages again whichever run starts it. The
 * fleet gives all the devices of one file to one worker thread: a file has one connection.
 */

/** Queue files a fleet's devices are spread over. */
export const QUEUE_FILES = 16;

export function queueFileOf(thingName: string): number {
  let h = 0;
  for (const c of thingName) h = (h * 31 + (c.codePointAt(0) ?? 0)) >>> 0;
  return h % QUEUE_FILES;
}

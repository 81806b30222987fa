/**
 * Child process of crash.test.ts: appends events to the bus at argv[2] as fast as it can, with
 * several appends in flight (group commit), and prints "offset id" for each acknowledged one.
 * The parent kills it with SIGKILL.
 */
import { encodePayload, SqliteEventBus } from '../../src/events/index.js';

const bus = await SqliteEventBus.open({ path: process.argv[2] ?? '', region: 'us-east' });
let n = 0;
const writer = async (w: number) => {
  for (;;) {
    const id = `w${w}-${n++}`;
    const { offset } = await bus.append({
      id,
      time: Date.now(),
      source: { type: 'rule', rule: 'crash' },
      topic: 'crash/test',
      payload: encodePayload(Buffer.from(JSON.stringify({ id }))),
    });
    process.stdout.write(`${offset} ${id}\n`);
  }
};
await Promise.all([0, 1, 2, 3].map(writer));

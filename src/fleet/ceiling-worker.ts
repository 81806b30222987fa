/** A worker thread of the ceiling's load (ceiling.ts): runs its share, posts the counts, ends. */
import { parentPort, workerData } from 'node:worker_threads';
import { type ConnectLoadOptions, connectLoad } from './ceiling.js';

const port = parentPort;
if (!port) throw new Error('the ceiling worker runs in a worker thread');
port.postMessage(await connectLoad(workerData as ConnectLoadOptions));

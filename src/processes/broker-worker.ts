/**
 * Entry of a broker worker (`broker.workers` > 1): a process forked by the region with
 * `node:cluster`, serving the region's MQTT ports with the others. It is told what to serve over
 * IPC, answers once it listens, and stops when told or when the region's process goes away.
 */
import cluster from 'node:cluster';
import { createLogger } from '../common/index.js';
import {
  type RunningBrokerNode,
  startBrokerNode,
  type WorkerReply,
  type WorkerRequest,
} from './broker-node.js';

if (cluster.isPrimary) {
  process.stderr.write('broker-worker runs only as a worker of a region (broker.workers)\n');
  process.exit(2);
}

let running: RunningBrokerNode | undefined;
let stopping = false;

function reply(message: WorkerReply): void {
  process.send?.(message);
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await running?.stop();
  } finally {
    reply({ type: 'stopped' });
    process.exit(code);
  }
}

process.on('message', (request: WorkerRequest) => {
  if (request.type === 'stop') {
    void stop(0);
    return;
  }
  if (request.type === 'metrics') {
    const { id } = request;
    // A worker still starting has nothing to tell yet.
    if (running === undefined) reply({ type: 'metrics', id, metrics: [] });
    else void running.metrics.getMetricsAsJSON().then((metrics) => reply({ type: 'metrics', id, metrics }));
    return;
  }
  if (request.type !== 'start' || running !== undefined) return;
  const { spec } = request;
  const logger = createLogger({
    level: spec.config.logging.level,
    name: `broker:${spec.region}:${process.env.IOTDR_BROKER_WORKER ?? '?'}`,
  });
  startBrokerNode(spec, logger).then(
    (node) => {
      running = node;
      reply({ type: 'listening', addresses: node.addresses });
    },
    (error: Error) => {
      logger.error({ err: error }, 'broker worker failed to start');
      reply({ type: 'failed', message: error.message });
      process.exit(1);
    },
  );
});
reply({ type: 'ready' });
// The region's process is gone: nothing would take these devices' messages.
process.on('disconnect', () => void stop(0));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(0));

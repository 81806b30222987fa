import { type ErrorCatalogue, IotdrError } from '../common/index.js';
import type { ForeignEtcdData } from './etcd.js';
import type { ForeignNatsData } from './nats.js';

/** Every code the composition roots raise while a process starts; the CLI prints them. */
export const PROCESSES_ERRORS = {
  IOTDR_PLATFORM_START_FAILED: {
    meaning: 'a process of `iotdr up` or `iotdr drill` exited, or did not answer its health URL in time',
  },
  IOTDR_ETCD_NOT_FOUND: {
    meaning: '`iotdr etcd` found no etcd binary (on PATH, in /usr/bin or /usr/sbin) to run the member with',
  },
  IOTDR_NATS_NOT_FOUND: {
    meaning:
      '`iotdr nats` found no nats-server binary (on PATH, in /usr/sbin or /usr/bin) to run the server with',
  },
  IOTDR_ETCD_DATA_OF_ANOTHER_CLUSTER: {
    meaning:
      "an etcd member's data directory holds a member of another member set than control.etcd.members lists",
  },
  IOTDR_NATS_DATA_OF_ANOTHER_CLUSTER: {
    meaning:
      "a NATS server's store directory holds JetStream data of another server set than its region's nats.servers lists",
  },
  IOTDR_BROKER_NODE_NO_REDIS: {
    meaning: 'a broker node was started for a region without `broker.cluster.redis`, which it must share',
  },
  IOTDR_BROKER_WORKER_START_FAILED: {
    meaning: 'a broker worker of the region (`broker.workers` > 1) failed, exited or did not listen in time',
  },
} as const satisfies ErrorCatalogue;

type ProcessesErrors = typeof PROCESSES_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends ProcessesErrors {}
}

/** `what` did not become ready (`reason`); its log is at `log`. */
export function platformStartFailed(what: string, reason: string, log: string, cause: unknown): IotdrError {
  return new IotdrError('IOTDR_PLATFORM_START_FAILED', `${what} ${reason}; see ${log}`, {
    cause,
    details: { process: what, log },
  });
}

export function etcdNotFound(): IotdrError {
  return new IotdrError(
    'IOTDR_ETCD_NOT_FOUND',
    'no etcd binary on PATH, in /usr/bin or /usr/sbin: install it (apt-get install etcd-server)',
  );
}

export function natsNotFound(): IotdrError {
  return new IotdrError(
    'IOTDR_NATS_NOT_FOUND',
    'no nats-server binary on PATH, in /usr/sbin or /usr/bin: install it (apt-get install nats-server)',
  );
}

export function etcdDataOfAnotherCluster(data: ForeignEtcdData): IotdrError {
  const { member, dataDir, recorded, configured } = data;
  const set = (c: ForeignEtcdData['recorded']) =>
    c.members.join(', ') + (recorded.token === configured.token ? '' : `; token ${c.token}`);
  return new IotdrError(
    'IOTDR_ETCD_DATA_OF_ANOTHER_CLUSTER',
    `etcd member ${member}: ${dataDir} holds its data in the cluster (${set(recorded)}), not in the one control.etcd.members lists (${set(configured)}); delete ${dataDir} to start it afresh in this one (its keys are lost), or list those members again`,
    { details: { member, dataDir, recorded: recorded.members, configured: configured.members } },
  );
}

export function natsDataOfAnotherCluster(data: ForeignNatsData): IotdrError {
  const { region, server, storeDir, recorded, configured } = data;
  const set = (s: ForeignNatsData['recorded']) =>
    s.routes.length === 0 ? 'a server alone' : `${s.cluster}: routes ${s.routes.join(', ')}`;
  return new IotdrError(
    'IOTDR_NATS_DATA_OF_ANOTHER_CLUSTER',
    `NATS server ${server} of ${region}: ${storeDir} holds its JetStream data as ${set(recorded)}, not as regions[].nats.servers lists it (${set(configured)}); delete ${storeDir}, and the stores of the region's other servers made with it, to start the region's NATS afresh (its events are lost), or list those servers again`,
    {
      details: {
        region,
        server,
        storeDir,
        recorded: recorded.routes,
        configured: configured.routes,
      },
    },
  );
}

export function brokerNodeNoRedis(region: string): IotdrError {
  return new IotdrError(
    'IOTDR_BROKER_NODE_NO_REDIS',
    `region ${region} has no redis: a broker node shares the region's Redis with its hub`,
    { details: { region } },
  );
}

export function brokerWorkerStartFailed(index: number, message: string): IotdrError {
  return new IotdrError('IOTDR_BROKER_WORKER_START_FAILED', message, { details: { worker: index } });
}

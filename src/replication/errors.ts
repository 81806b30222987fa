import { type ErrorCatalogue, IotdrError, NotFoundError, relayedCode } from '../common/index.js';

/** Every code replication raises. */
export const REPLICATION_ERRORS = {
  IOTDR_REPLICATION_PEER_UNREACHABLE: {
    meaning:
      "a peer's API could not be reached for its change feed or snapshot; the link retries with backoff",
  },
  IOTDR_REPLICATION_PEER_ERROR: {
    meaning: 'a peer answered its change feed with an error that is not problem+json; the link retries',
  },
  IOTDR_REPLICATION_FOREIGN_ORIGIN: {
    meaning:
      "a dead letter's code: a peer sent a change whose origin is another region; each region's changes are taken from that region only",
  },
  IOTDR_REPLICATION_GRANT_REFUSED: {
    meaning: "a dead letter's code: a token change from a region that `replication.tokensFrom` does not list",
  },
  IOTDR_REPLICATION_DEAD_LETTER_NOT_FOUND: {
    status: 404,
    meaning: 'no dead letter with that id from that peer (retried or discarded already?)',
  },
} as const satisfies ErrorCatalogue;

type ReplicationErrors = typeof REPLICATION_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends ReplicationErrors {}
}

/**
 * The peer's answer was not a success: its status and, when it sent one, its problem code, which
 * the error keeps as its own (a 401 from the peer is IOTDR_AUTH_INVALID_TOKEN here too).
 */
export class FeedError extends IotdrError {
  constructor(message: string, status: number, code: unknown) {
    super(relayedCode(code, 'IOTDR_REPLICATION_PEER_ERROR'), message, {
      status: 502,
      details: { peerStatus: status },
    });
    this.name = 'FeedError';
  }
}

export function peerUnreachable(peer: string, base: string, cause: unknown): IotdrError {
  return new IotdrError('IOTDR_REPLICATION_PEER_UNREACHABLE', `peer ${peer} (${base}) unreachable`, {
    status: 502,
    cause,
  });
}

export function deadLetterNotFound(peer: string, id: string): NotFoundError {
  return new NotFoundError('IOTDR_REPLICATION_DEAD_LETTER_NOT_FOUND', `no dead letter ${id} from ${peer}`);
}

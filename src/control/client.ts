/**
 * The control nodes' etcd client. etcd3's default fault handling retries a failed call up to three
 * times under the first attempt's deadline and opens every member's circuit breaker at once after
 * a timeout, which turns one slow member into seconds of refusing them all. The election and the
 * store retry on their own schedule, so here a call is one attempt on one member, and a member
 * that failed is skipped for a moment (its breaker) so the next call goes to another.
 */
import { ConsecutiveBreaker, circuitBreaker, handleWhen, noop } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';

/** A member whose call failed is skipped for this long, ms. */
export const ETCD_MEMBER_BACKOFF_MS = 1000;

export interface EtcdClientOptions {
  /** Client URLs of the members (https with mutual TLS). */
  readonly endpoints: readonly string[];
  /** PEM texts: the CA that signed the members' certificates, and this site's certificate and key. */
  readonly tls?: { readonly caPem: string; readonly certPem: string; readonly keyPem: string };
  /** Time to connect to a member, ms. */
  readonly dialTimeoutMs?: number;
}

export function etcdClient(options: EtcdClientOptions): Etcd3 {
  const tls = options.tls;
  return new Etcd3({
    hosts: [...options.endpoints],
    dialTimeout: options.dialTimeoutMs ?? 1000,
    ...(tls
      ? {
          credentials: {
            rootCertificate: Buffer.from(tls.caPem),
            certChain: Buffer.from(tls.certPem),
            privateKey: Buffer.from(tls.keyPem),
          },
        }
      : {}),
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: ETCD_MEMBER_BACKOFF_MS,
          breaker: new ConsecutiveBreaker(1),
        }),
      global: noop,
    },
  });
}

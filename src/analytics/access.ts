/**
 * Who may read analytics, from where. Fleet data (inventory, gaps, switch reasons, region errors)
 * needs a token of the reader role or above; and every request must name analytics by a name it
 * answers to, so that a web page whose DNS name was rebound to analytics' address (DNS rebinding)
 * cannot read it from a browser: the browser sends that page's name as Host.
 */
import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { problem, sendProblem } from '../http/index.js';

/** Loopback addresses: the system answers to `localhost` there. */
function isLoopback(address: string): boolean {
  return address === '::1' || /^127\./.test(address);
}

/** The host name of a Host header: no port, no IPv6 brackets, lower case, no trailing dot. */
export function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  const name = value.startsWith('[') ? value.slice(1, value.indexOf(']')) : value.replace(/:\d*$/, '');
  return name.replace(/\.$/, '');
}

/** An IPv4 address as a socket on a dual-stack listener reports it (`::ffff:127.0.0.1`) made plain. */
function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return (mapped?.[1] ?? address).toLowerCase();
}

/**
 * Whether `host` (a Host header) names this server: the address the connection came in on (its
 * listen address, or the interface's when it listens on every one), `localhost` on loopback, or
 * one of `allowed` (the configured address and `analytics.allowedHosts`). Only the name counts,
 * not the port: rebinding changes the name.
 */
export function hostAllowed(
  host: string | undefined,
  localAddress: string | undefined,
  allowed: readonly string[],
): boolean {
  if (host === undefined || host === '') return false;
  const name = hostName(host);
  if (localAddress !== undefined) {
    const local = plainAddress(localAddress);
    if (isIP(name) !== 0 && plainAddress(name) === local) return true;
    if (name === 'localhost' && isLoopback(local)) return true;
  }
  return allowed.some((a) => hostName(a) === name);
}

/**
 * onRequest hook of analytics' routes: a request whose Host does not name analytics is answered
 * 421 `IOTDR_ANALYTICS_HOST_NOT_ALLOWED` before anything is read.
 */
export function hostCheck(allowed: readonly string[]) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const host = request.headers.host;
    if (hostAllowed(host, request.socket.localAddress, allowed)) return undefined;
    request.log.warn({ host }, 'request refused: its Host does not name analytics');
    return sendProblem(
      request,
      reply,
      problem(
        421,
        'IOTDR_ANALYTICS_HOST_NOT_ALLOWED',
        `analytics does not answer to the name '${host ?? ''}': use its address, or add the name to analytics.allowedHosts`,
        { host: host ?? null },
      ),
    );
  };
}

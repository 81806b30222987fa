/** Timers the TCP edge arms for idle timeouts and the PowerDNS client for request timeouts. */
export { systemTimers, type Timers } from '../common/index.js';

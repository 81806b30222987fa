/** The default provider: sets the record state of one or more built-in servers' engines in this process. */
import type { DnsEngine } from '../engine.js';
import { type ActiveRegion, parseDnsState } from '../state.js';
import { checkEpoch, parseActive } from './fence.js';
import type { DnsProvider } from './types.js';

export interface BuiltinProviderOptions {
  /** The engines to update, at least one; `current()` reads the first. */
  readonly engines: readonly DnsEngine[];
}

export class BuiltinDnsProvider implements DnsProvider {
  readonly kind = 'builtin';
  readonly #engines: readonly DnsEngine[];

  constructor(options: BuiltinProviderOptions) {
    if (options.engines.length === 0) throw new TypeError('BuiltinDnsProvider needs at least one engine');
    this.#engines = [...options.engines];
  }

  async apply(input: ActiveRegion): Promise<void> {
    const active = parseActive(input);
    const current = await this.current();
    if (checkEpoch(current, active)) return;
    // Parse every engine's new state before touching any, so a bad one changes nothing.
    const next = this.#engines.map((engine) => parseDnsState({ ...engine.state, active }));
    for (const [i, engine] of this.#engines.entries()) engine.setState(next[i] ?? engine.state);
  }

  async current(): Promise<ActiveRegion | undefined> {
    return this.#engines[0]?.state.active;
  }

  async close(): Promise<void> {}
}

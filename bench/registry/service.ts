/**
 * Registry service write throughput: `RegistryService.putThing` of distinct things, many callers
 * at once, through the store's group committer. No HTTP: this is the ceiling the API sits on.
 */
import { KIND, RegistryService, type RegistryStore } from '../../src/registry/index.js';
import { check, drive, type Figure, percentile } from './common.js';

export interface ServiceBenchOptions {
  /** A store already initialised and empty; the caller closes it. */
  store: RegistryStore;
  /** Shown in the table, e.g. "sqlite synchronous=full". */
  setting: string;
  /** putThing calls in flight at once. */
  concurrency: number;
  /** Timed part, in ms. */
  durationMs: number;
  /** Untimed warm-up before it, in ms. */
  warmupMs: number;
  /** Upper bound on calls in each part, so the loop is bounded even on a very fast machine. */
  maxOps: number;
  target?: number;
}

/** A thing as a fleet registers it: a name and a few attributes, no type. */
function body(i: number) {
  return {
    attributes: {
      site: `site-${i % 97}`,
      model: 'x2',
      serial: `SN${i.toString().padStart(9, '0')}`,
      firmware: '1.4.2',
    },
  };
}

export async function benchServiceUpserts(options: ServiceBenchOptions): Promise<Figure> {
  const { store } = options;
  check((await store.count(KIND.thing)) === 0, `the ${options.setting} store is not empty`);
  const service = new RegistryService({ store, region: 'us-east' });
  await service.init();

  const put = (prefix: string) => async (i: number) => {
    const r = await service.putThing(`${prefix}-${i}`, body(i));
    if (!r.created || !r.changed || r.item.version !== 1) {
      throw new Error(`putThing ${prefix}-${i} did not create version 1: ${JSON.stringify(r)}`);
    }
  };
  const warm = await drive(options.concurrency, options.warmupMs, options.maxOps, put('warm'));
  const timed = await drive(options.concurrency, options.durationMs, options.maxOps, put('thing'));

  // The work is real: every thing is in the store, with its change record, and reads back.
  const written = warm.ops + timed.ops;
  const things = await store.count(KIND.thing);
  check(things === written, `${options.setting}: ${things} things in the store, ${written} written`);
  const lastSeq = await store.lastSeq();
  check(lastSeq === written, `${options.setting}: change log at seq ${lastSeq}, ${written} changes written`);
  const last = timed.ops - 1;
  const sample = await service.getThing(`thing-${last}`);
  check(
    sample.attributes.serial === body(last).attributes.serial,
    `${options.setting}: thing-${last} reads back as ${JSON.stringify(sample)}`,
  );

  return {
    figure: 'service upserts (putThing)',
    setting: options.setting,
    concurrency: options.concurrency,
    ops: timed.ops,
    seconds: timed.seconds,
    perSecond: timed.ops / timed.seconds,
    p50Ms: percentile(timed.latenciesMs, 0.5),
    p99Ms: percentile(timed.latenciesMs, 0.99),
    ...(options.target === undefined ? {} : { target: options.target }),
  };
}

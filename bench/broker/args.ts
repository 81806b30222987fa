/** `npm run bench:broker`'s options (documented in run.ts's head comment), parsed once into a frozen value. */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import type { HeldKind } from './held.js';
import { SETUP_NAMES } from './setups.js';

export const FIGURE_NAMES = ['mtls', 'resumed', 'token', 'qos1'] as const;
export type FigureName = (typeof FIGURE_NAMES)[number];
const HELD_KINDS = ['exact', 'wildcard'] as const satisfies readonly HeldKind[];

/** Default `--workers`: the machine's cores, at least 2 (one worker is the `redis` setup). */
export const DEFAULT_WORKERS = Math.max(2, availableParallelism());
export const DEFAULT_HELD = '0,10000,100000';
/** Default `--filters`: subscriptions per held session (100,000 held = 1,000 sessions). */
export const DEFAULT_FILTERS = 100;

const intIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** A comma-separated list, each item checked by `item`, duplicates dropped. */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (v) =>
      typeof v === 'string' ? [...new Set(v.split(',').map((x) => x.trim()))].filter((x) => x !== '') : v,
    z.array(item).min(1),
  );

const argsSchema = z.object({
  seconds: z.coerce.number().min(0.5).max(600),
  warmup: z.coerce.number().min(0).max(60),
  concurrency: intIn(1, 1000),
  publishers: intIn(1, 100),
  subscribers: intIn(1, 100),
  window: intIn(1, 1000),
  payload: intIn(16, 128 * 1024),
  iotdr: z.enum(['auto', 'region', 'broker']),
  'mosquitto-nagle': z.boolean(),
  setups: list(z.enum(SETUP_NAMES)),
  workers: intIn(2, 64),
  figures: list(z.enum(FIGURE_NAMES)),
  held: list(intIn(0, 1_000_000)).transform((h) => h.sort((a, b) => a - b)),
  kinds: list(z.enum(HELD_KINDS)),
  filters: intIn(1, 10_000),
});
export type Args = Readonly<z.infer<typeof argsSchema>>;

/** The parsed options, or a message naming each wrong option and what would be valid. */
export function parse(argv: string[]): Args | string {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        seconds: { type: 'string', default: '5' },
        warmup: { type: 'string', default: '1' },
        concurrency: { type: 'string', default: '16' },
        publishers: { type: 'string', default: '4' },
        subscribers: { type: 'string', default: '1' },
        window: { type: 'string', default: '16' },
        payload: { type: 'string', default: '64' },
        iotdr: { type: 'string', default: 'auto' },
        'mosquitto-nagle': { type: 'boolean', default: false },
        setups: { type: 'string', default: SETUP_NAMES.join(',') },
        workers: { type: 'string', default: String(DEFAULT_WORKERS) },
        figures: { type: 'string', default: FIGURE_NAMES.join(',') },
        held: { type: 'string', default: DEFAULT_HELD },
        kinds: { type: 'string', default: HELD_KINDS.join(',') },
        filters: { type: 'string', default: String(DEFAULT_FILTERS) },
      },
    }));
  } catch (error) {
    return (error as Error).message;
  }
  const parsed = argsSchema.safeParse(values);
  if (parsed.success) return Object.freeze(parsed.data);
  return parsed.error.issues
    .map(
      (i) => `--${String(i.path[0])}: ${i.message}${i.path.length > 1 ? ` (item ${String(i.path[1])})` : ''}`,
    )
    .join('\n');
}

/** One QoS1 run's subscriptions held: none, or `count` of one kind. */
export type HeldLevel = { count: 0 } | { count: number; kind: HeldKind };

/** QoS1's runs in order: nothing held (when asked), then per kind each count, ascending. */
export function heldLevels(args: Args): HeldLevel[] {
  const levels: HeldLevel[] = args.held.includes(0) ? [{ count: 0 }] : [];
  for (const kind of args.kinds) for (const count of args.held) if (count > 0) levels.push({ count, kind });
  return levels;
}

export function heldLabel(level: HeldLevel): string {
  return 'kind' in level ? `${level.count.toLocaleString('en-US')} ${level.kind}` : '0';
}

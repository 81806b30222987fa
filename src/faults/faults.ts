/**
 * Fault injection in a region, for `iotdr drill` (docs/architecture.md §4.16, §5.5): faults are made for real, never
 * by faking a health answer — the broker is closed, the command-and-control listener is closed,
 * the application service a health check watches stops answering. A region accepts these only
 * when started with fault injection enabled (`iotdr region --enable-faults`); otherwise every
 * route answers 403.
 *
 * `region-crash` (SIGKILL of the region process) and `analytics-unhealthy` (analytics stops
 * ingesting a region) are made by the drill from outside; they need nothing here.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type Clock, type Logger, systemClock } from '../common/index.js';
import { ADMIN, defineRoute, problemAnswers, routeOf } from '../http/index.js';
import { FaultNotRestorableError, FaultsDisabledError } from './errors.js';

/** Faults a region makes on request. */
export const REGION_FAULTS = ['broker-crash', 'cnc-unhealthy', 'app-unhealthy'] as const;
export type RegionFault = (typeof REGION_FAULTS)[number];

/** Every fault the drill knows, the region's and those it makes from outside. */
export const DRILL_FAULTS = [...REGION_FAULTS, 'region-crash', 'analytics-unhealthy'] as const;
export type DrillFault = (typeof DRILL_FAULTS)[number];

/** The path of the region's demo application service, which a health check of component `app` can watch. */
export const APP_TARGET_PATH = '/v1/faults/app-target';

export interface FaultTargets {
  /** Closes the broker's listeners and every session at once (devices see their connection drop). */
  crashBroker(): Promise<void>;
  /** Closes the command-and-control listener; `restoreCnc` opens it again. */
  stopCnc(): Promise<void>;
  restoreCnc(): Promise<unknown>;
}

export interface ActiveFault {
  fault: RegionFault;
  /** ms since the epoch, when the fault was made. */
  at: number;
}

/** The faults of one region: what is active, and how to make and undo each. */
export class RegionFaults {
  readonly enabled: boolean;
  readonly #targets: FaultTargets;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #active = new Map<RegionFault, ActiveFault>();

  constructor(options: { enabled: boolean; targets: FaultTargets; clock?: Clock; logger?: Logger }) {
    this.enabled = options.enabled;
    this.#targets = options.targets;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
  }

  active(): ActiveFault[] {
    return [...this.#active.values()];
  }

  isActive(fault: RegionFault): boolean {
    return this.#active.has(fault);
  }

  /** Makes the fault (idempotent); resolves once it is in effect, with the time it was made. */
  async inject(fault: RegionFault): Promise<ActiveFault> {
    if (!this.enabled) throw new FaultsDisabledError();
    const current = this.#active.get(fault);
    if (current) return current;
    const made: ActiveFault = { fault, at: this.#clock.now() };
    this.#active.set(fault, made);
    this.#logger?.warn({ fault }, 'fault injected');
    if (fault === 'broker-crash') await this.#targets.crashBroker();
    else if (fault === 'cnc-unhealthy') await this.#targets.stopCnc();
    return made;
  }

  async clear(fault: RegionFault): Promise<void> {
    if (!this.enabled) throw new FaultsDisabledError();
    if (!this.#active.has(fault)) return;
    if (fault === 'broker-crash') throw new FaultNotRestorableError(fault);
    if (fault === 'cnc-unhealthy') await this.#targets.restoreCnc();
    this.#active.delete(fault);
    this.#logger?.warn({ fault }, 'fault cleared');
  }
}

const faultParams = z.object({ fault: z.enum(REGION_FAULTS) }).strict();
const activeSchema = z.object({ fault: z.enum(REGION_FAULTS), at: z.number().int() });
const errors = problemAnswers(400, 401, 403, 409);

/** The fault routes as route contracts: faultRoutes registers them, the drill calls them. */
export const FAULT_ROUTES = {
  list: defineRoute({
    method: 'GET',
    url: '/v1/faults',
    tags: ['faults'],
    responses: { 200: z.object({ enabled: z.boolean(), active: z.array(activeSchema) }), ...errors },
  }),
  inject: defineRoute({
    method: 'POST',
    url: '/v1/faults/:fault',
    tags: ['faults'],
    description: `Make a fault for real: ${REGION_FAULTS.join(', ')}. 403 unless the region runs with --enable-faults.`,
    params: faultParams,
    responses: { 200: activeSchema, ...errors },
  }),
  clear: defineRoute({
    method: 'DELETE',
    url: '/v1/faults/:fault',
    tags: ['faults'],
    params: faultParams,
    responses: { 204: z.null(), ...errors },
  }),
} as const;

/** `GET/POST/DELETE /v1/faults[/{fault}]` (admin) and the demo application service's health. */
export function faultRoutes(faults: RegionFaults) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(FAULT_ROUTES.list),
      config: { roles: ADMIN },
      handler: async () => ({ enabled: faults.enabled, active: faults.active() }),
    });
    app.route({
      ...routeOf(FAULT_ROUTES.inject),
      config: { roles: ADMIN },
      handler: async (req) => faults.inject(req.params.fault),
    });
    app.route({
      ...routeOf(FAULT_ROUTES.clear),
      config: { roles: ADMIN },
      handler: async (req, reply) => {
        await faults.clear(req.params.fault);
        return reply.code(204).send(null);
      },
    });
    // The region's stand-in for an application service (the reference design's "application
    // services" checkpoint): a health check of component `app` can watch it. No authentication,
    // like any health endpoint.
    app.get(APP_TARGET_PATH, {
      schema: { tags: ['faults'], hide: true },
      handler: async (_req, reply) =>
        faults.isActive('app-unhealthy')
          ? reply.code(503).send({ status: 'fail', output: 'app-unhealthy fault injected' })
          : reply.code(200).send({ status: 'pass' }),
    });
  };
}

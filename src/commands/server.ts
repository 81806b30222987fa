/**
 * The command-and-control service of one region: its own HTTP(S) listener (what `api.<zone>`
 * reaches), the command dispatcher, onboarding jobs and idempotency records. The listener can be
 * stopped and started again on its own (the drill's `cnc-unhealthy` fault); the `cnc` health
 * checkpoint sees that.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { baseUrl, type Clock, type Logger } from '../common/index.js';
import { type Checkpoint, customCheckpoint } from '../health/index.js';
import { buildApi } from '../http/index.js';
import type { RegistryService } from '../registry/index.js';
import { type CommandBroker, CommandService } from './commands.js';
import { cncRoutes } from './http.js';
import { IdempotencyStore } from './idempotency.js';
import { JobService } from './jobs.js';

export interface CncServerOptions {
  service: RegistryService;
  broker: CommandBroker;
  logger: Logger;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** HTTPS with this certificate (from the embedded CA, naming `api.<zone>`); plain HTTP without. */
  tls?: { certPem: string; keyPem: string };
  bodyLimit?: number;
  metrics?: Registry;
  clock?: Clock;
  /** How long a finished onboarding job's private keys wait to be fetched, ms. Default 1 hour (JOB_KEYS_TTL_MS). */
  keysTtlMs?: number;
}

export class CncServer {
  readonly commands: CommandService;
  readonly jobs: JobService;
  readonly idempotency: IdempotencyStore;
  readonly #options: CncServerOptions;
  #app: FastifyInstance | undefined;
  #url: string | undefined;
  #port: number;

  constructor(options: CncServerOptions) {
    this.#options = options;
    this.#port = options.port;
    const logger = options.logger;
    this.commands = new CommandService({
      service: options.service,
      broker: options.broker,
      logger: logger.child({ component: 'commands' }),
      ...(options.clock ? { clock: options.clock } : {}),
    });
    this.jobs = new JobService({
      service: options.service,
      logger: logger.child({ component: 'jobs' }),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.keysTtlMs === undefined ? {} : { keysTtlMs: options.keysTtlMs }),
    });
    this.idempotency = new IdempotencyStore({
      service: options.service,
      logger,
      ...(options.clock ? { clock: options.clock } : {}),
    });
  }

  /** Starts the dispatcher, the jobs and the listener; resolves with the listener's URL. */
  async start(): Promise<string> {
    await this.commands.start();
    await this.jobs.start();
    this.idempotency.start();
    return this.listen();
  }

  /** Opens the listener (again, after `unlisten`), on the same port as before. */
  async listen(): Promise<string> {
    if (this.#app && this.#url) return this.#url;
    const app = await buildApi({
      openapi: {
        title: 'iotdr command-and-control API',
        description: 'Onboarding, suspension, decommissioning and commands of the devices of one region.',
      },
      tokens: this.#options.service,
      logger: this.#options.logger,
      routes: [
        cncRoutes({
          service: this.#options.service,
          commands: this.commands,
          jobs: this.jobs,
          idempotency: this.idempotency,
        }),
      ],
      ...(this.#options.metrics ? { metrics: this.#options.metrics } : {}),
      ...(this.#options.bodyLimit ? { bodyLimit: this.#options.bodyLimit } : {}),
      ...(this.#options.tls
        ? { https: { cert: this.#options.tls.certPem, key: this.#options.tls.keyPem } }
        : {}),
    });
    await app.listen({ host: this.#options.host, port: this.#port });
    const address = app.server.address();
    if (typeof address === 'object' && address) this.#port = address.port;
    this.#app = app;
    this.#url = baseUrl(this.#options.host, this.#port, this.#options.tls ? 'https' : 'http');
    return this.#url;
  }

  /** Closes the listener only; commands and jobs go on (fault injection). */
  async unlisten(): Promise<void> {
    const app = this.#app;
    this.#app = undefined;
    this.#url = undefined;
    await app?.close();
  }

  get listening(): boolean {
    return this.#app?.server.listening === true;
  }

  get url(): string | undefined {
    return this.#url;
  }

  async close(): Promise<void> {
    await this.unlisten();
    this.idempotency.stop();
    await this.jobs.stop();
    await this.commands.stop();
  }
}

/**
 * The region's `cnc` checkpoint: the listener is up (asked over the network, as a console would),
 * the registry answers, and the broker takes a message (what command delivery needs).
 */
export function cncCheckpoint(
  server: CncServer,
  service: RegistryService,
  publish: (topic: string) => Promise<void>,
  /** The embedded CA's certificate, to verify the listener when it serves HTTPS. */
  ca?: string,
): Checkpoint {
  return customCheckpoint(
    'cnc',
    'cnc',
    async ({ signal, step }) => {
      step('listener');
      const url = server.url;
      if (!url || !server.listening) throw new Error('the command-and-control listener is not listening');
      const status = await getStatus(`${url}/livez`, ca, signal).catch((error: Error) => {
        throw new Error(`the command-and-control listener does not answer: ${error.message}`);
      });
      if (status !== 200) throw new Error(`the command-and-control listener answers ${status}`);
      step('store');
      await service.store.lastSeq();
      step('broker');
      await publish(`$iotdr/health/${service.region}/cnc`);
    },
    { componentType: 'component', measurement: 'responseTime' },
  );
}

/** GET over HTTP or HTTPS (verified against `ca`), resolving with the status code. */
function getStatus(url: string, ca: string | undefined, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', signal, ...(secure && ca ? { ca } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

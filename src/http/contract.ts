import type { z } from 'zod';

/**
 * A route contract: one object per route holding its method, URL pattern and zod schemas. The
 * server registers the route from it (`routeOf`) and a client calls it with it
 * (`ApiClient.request`), so the route's schema exists once and the client's types are the
 * server's.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Response schemas by HTTP status: the successes a client reads, and the problems it may meet. */
export type ResponseSchemas = Readonly<Record<number, z.ZodType>>;

type Part = z.ZodType | undefined;

export interface RouteContract<
  P extends Part = Part,
  Q extends Part = Part,
  B extends Part = Part,
  R extends ResponseSchemas = ResponseSchemas,
> {
  readonly method: HttpMethod;
  /** Fastify's pattern, `:name` for a path parameter: `/v1/things/:name`. */
  readonly url: string;
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly responses: R;
  /** OpenAPI tags and description. */
  readonly tags: readonly string[];
  readonly description: string | undefined;
  /** Called without a token (GET /health: checkers on other networks); OpenAPI says so. */
  readonly public: boolean;
}

export interface RouteDefinition<P extends Part, Q extends Part, B extends Part, R extends ResponseSchemas> {
  method: HttpMethod;
  url: string;
  params?: P;
  query?: Q;
  body?: B;
  responses: R;
  tags?: readonly string[];
  description?: string;
  /** Default false: the route needs a bearer token. */
  public?: boolean;
}

/** A contract from its definition; the parts it does not name are `undefined` (no params, …). */
export function defineRoute<
  P extends Part = undefined,
  Q extends Part = undefined,
  B extends Part = undefined,
  const R extends ResponseSchemas = ResponseSchemas,
>(definition: RouteDefinition<P, Q, B, R>): RouteContract<P, Q, B, R> {
  return Object.freeze({
    method: definition.method,
    url: definition.url,
    params: definition.params as P,
    query: definition.query as Q,
    body: definition.body as B,
    responses: definition.responses,
    tags: definition.tags ?? [],
    description: definition.description,
    public: definition.public ?? false,
  });
}

/** The fastify route schema of a contract; fastify-type-provider-zod types the handler from it. */
export interface RouteSchemaOf<C extends RouteContract> {
  tags: string[];
  description?: string;
  params: C['params'];
  querystring: C['query'];
  body: C['body'];
  response: C['responses'];
  /** `[]` on a public route: OpenAPI's "no security requirement". */
  security?: Record<string, string[]>[];
}

/**
 * What `app.route()` needs of a contract: `app.route({ ...routeOf(contract), config, handler })`.
 * The handler is then typed by the contract's schemas, and its answer checked against them.
 */
export function routeOf<C extends RouteContract>(
  contract: C,
): { method: C['method']; url: string; schema: RouteSchemaOf<C> } {
  const schema = {
    tags: [...contract.tags],
    ...(contract.description === undefined ? {} : { description: contract.description }),
    ...(contract.params === undefined ? {} : { params: contract.params }),
    ...(contract.query === undefined ? {} : { querystring: contract.query }),
    ...(contract.body === undefined ? {} : { body: contract.body }),
    response: contract.responses,
    ...(contract.public ? { security: [] } : {}),
  } as RouteSchemaOf<C>;
  return { method: contract.method, url: contract.url, schema };
}

/** Whether two types are the same: each assignable to the other. */
export type SameType<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/**
 * Compiles only when given `true`. Where an answer's schema documents a hand-written type, this
 * keeps the two in step: `export type _Check = Expect<SameType<z.output<typeof schema>, Type>>`.
 */
export type Expect<T extends true> = T;

type SuccessStatus = 200 | 201 | 202 | 203 | 204 | 206;

/** What a call of the route resolves with: the union of its success answers. */
export type SuccessOf<C extends RouteContract> = {
  [S in keyof C['responses'] & SuccessStatus]: z.output<C['responses'][S]>;
}[keyof C['responses'] & SuccessStatus];

/**
 * Every answer the route declares, as `{ status, body }` by status, problems included: what
 * `ApiClient.requestAny` resolves with, for a caller to whom a declared non-2xx is an answer (a
 * region's /health answering 503 with its health report).
 */
export type AnswerOf<C extends RouteContract> = {
  [S in keyof C['responses'] & number]: { status: S; body: z.output<C['responses'][S]> };
}[keyof C['responses'] & number];

/** A request part: required when the schema requires something, absent when the route takes none. */
type InputPart<K extends string, S> = S extends z.ZodType
  ? undefined extends z.input<S>
    ? { [key in K]?: z.input<S> }
    : { [key in K]: z.input<S> }
  : { [key in K]?: never };

/** A query of optional parameters only may be left out. */
type QueryPart<S> = S extends z.ZodType
  ? Record<string, never> extends z.input<S>
    ? { query?: z.input<S> }
    : { query: z.input<S> }
  : { query?: never };

/** A body that is not JSON (a CSV list), sent as it is. */
export interface RawBody {
  text: string;
  contentType: string;
}

/** The body: JSON by the route's schema, or `raw` text where the route takes another media type. */
type BodyPart<S> = S extends z.ZodType
  ?
      | (undefined extends z.input<S> ? { body?: z.input<S> } : { body: z.input<S> })
      | { body?: never; raw: RawBody }
  : { body?: never; raw?: never };

export type RequestOf<C extends RouteContract> = InputPart<'params', C['params']> &
  QueryPart<C['query']> &
  BodyPart<C['body']>;

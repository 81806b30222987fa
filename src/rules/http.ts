import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { encodePayload } from '../events/index.js';
import { problemAnswers, READ, WRITE } from '../http/index.js';
import type { DeadLetter } from './dead-letters.js';
import type { RuleEngine } from './engine.js';
import { deadLetterNotFound, noApiRules, ruleNotFound } from './errors.js';
import { putRuleBody, type RuleAction, ruleActionSchema, ruleNameSchema } from './model.js';
import { REDACTED, redactActions } from './redact.js';

const errors = problemAnswers(400, 401, 403, 404, 409, 503);

const ruleSchema = z
  .object({
    name: z.string(),
    topicFilter: z.string(),
    select: z.array(z.string()).optional(),
    actions: z
      .array(ruleActionSchema)
      .describe(`HTTP header values read ${REDACTED}; sent back, ${REDACTED} keeps the stored value`),
    enabled: z.boolean(),
    source: z.enum(['config', 'api']).describe('config rules are read-only'),
    version: z.number().int().optional(),
    createdAt: z.string().optional(),
    updatedAt: z.string().optional(),
  })
  .meta({ id: 'TopicRule' });

const deadLetterSchema = z
  .object({
    id: z.string(),
    rule: z.string(),
    eventId: z.string(),
    url: z.string(),
    attempts: z.number().int(),
    lastError: z.string(),
    at: z.number(),
    body: z.discriminatedUnion('type', [
      z.object({ type: z.literal('json'), value: z.unknown() }),
      z.object({ type: z.literal('base64'), data: z.string() }),
    ]),
  })
  .meta({ id: 'RuleDeadLetter' });

const nameParams = z.object({ name: ruleNameSchema }).strict();
const letterParams = z
  .object({ id: z.string().regex(/^[0-9a-f-]{36}$/, 'a dead letter id (UUID)') })
  .strict();

/** A rule as the API shows it: header values never leave the region this way (see redact.ts). */
function ruleView<T extends { actions: RuleAction[] }>(rule: T): T {
  return { ...rule, actions: redactActions(rule.actions) };
}

function letterView(d: DeadLetter) {
  return {
    id: d.id,
    rule: d.rule,
    eventId: d.eventId,
    url: d.url,
    attempts: d.attempts,
    lastError: d.lastError,
    at: d.at,
    body: encodePayload(d.body),
  };
}

/** Topic rules (`/v1/rules`) and the dead letters of their HTTP actions. */
export function ruleRoutes(engine: RuleEngine) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    // Static routes first in meaning: rule names cannot contain '-', so no rule is "dead-letters".
    app.get('/v1/rules/dead-letters', {
      config: { roles: READ },
      schema: {
        tags: ['rules'],
        description:
          'HTTP deliveries that failed their last attempt, oldest first. Page with after = the last id.',
        querystring: z
          .object({
            rule: ruleNameSchema.optional(),
            after: letterParams.shape.id.optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          })
          .strict(),
        response: { 200: z.object({ items: z.array(deadLetterSchema) }), ...errors },
      },
      handler: async (req) => ({
        items: engine.deadLetters
          .list({
            limit: req.query.limit,
            ...(req.query.rule === undefined ? {} : { rule: req.query.rule }),
            ...(req.query.after === undefined ? {} : { after: req.query.after }),
          })
          .map(letterView),
      }),
    });
    app.post('/v1/rules/dead-letters/:id/retry', {
      config: { roles: WRITE },
      schema: {
        tags: ['rules'],
        description:
          'Send the request once more: delivered removes the dead letter; failed keeps it with the new error.',
        params: letterParams,
        response: {
          200: z.object({ outcome: z.enum(['delivered', 'failed']), lastError: z.string().optional() }),
          ...errors,
        },
      },
      handler: async (req) => {
        const result = await engine.retryDeadLetter(req.params.id);
        if (!result) throw deadLetterNotFound(req.params.id);
        return result;
      },
    });
    app.delete('/v1/rules/dead-letters/:id', {
      config: { roles: WRITE },
      schema: { tags: ['rules'], params: letterParams, response: { 204: z.null(), ...errors } },
      handler: async (req, reply) => {
        if (!engine.discardDeadLetter(req.params.id)) throw deadLetterNotFound(req.params.id);
        return reply.code(204).send(null);
      },
    });

    app.get('/v1/rules', {
      config: { roles: READ },
      schema: {
        tags: ['rules'],
        description: 'Every rule of the region: config rules (read-only) then API rules, by name.',
        response: { 200: z.object({ items: z.array(ruleSchema) }), ...errors },
      },
      handler: async () => ({ items: engine.listRules().map(ruleView) }),
    });
    app.get('/v1/rules/:name', {
      config: { roles: READ },
      schema: { tags: ['rules'], params: nameParams, response: { 200: ruleSchema, ...errors } },
      handler: async (req) => {
        // The engine's view is updated by every commit before the write's answer is sent.
        const rule = engine.getRule(req.params.name);
        if (!rule) throw ruleNotFound(req.params.name);
        return ruleView(rule);
      },
    });
    app.put('/v1/rules/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['rules'],
        description:
          'Create or replace an API rule. Stored in the registry, so it replicates to every region. 409 for the name of a config rule, or when expectedVersion does not match.',
        params: nameParams,
        body: putRuleBody,
        response: { 200: ruleSchema, 201: ruleSchema, ...errors },
      },
      handler: async (req, reply) => {
        if (!engine.store) throw noApiRules();
        const result = await engine.store.put(req.params.name, req.body);
        return reply
          .code(result.created ? 201 : 200)
          .send(ruleView({ ...result.rule, source: 'api' as const }));
      },
    });
    app.delete('/v1/rules/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['rules'],
        params: nameParams,
        querystring: z.object({ expectedVersion: z.coerce.number().int().nonnegative().optional() }).strict(),
        response: { 204: z.null(), ...errors },
      },
      handler: async (req, reply) => {
        if (!engine.store) throw noApiRules();
        await engine.store.delete(req.params.name, req.query.expectedVersion);
        return reply.code(204).send(null);
      },
    });
  };
}

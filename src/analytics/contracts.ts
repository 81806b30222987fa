/**
 * The analytics routes the drill calls, as route contracts: analyticsRoutes registers them,
 * ApiClient calls them.
 */
import { z } from 'zod';
import { defineRoute, type Expect, problemAnswers, type SameType } from '../http/index.js';
import type { AnalyticsQueries, IngestStatus } from './types.js';

const errors = problemAnswers(400, 401, 403, 404);
export const regionParam = z.object({ region: z.string().min(1).max(64) }).strict();

const ingestStatusSchema = z
  .object({
    region: z.string(),
    state: z.discriminatedUnion('type', [
      z.object({ type: z.literal('starting') }),
      z.object({ type: z.literal('ingesting') }),
      z.object({ type: z.literal('lagging'), lagMs: z.number() }),
      z.object({ type: z.literal('unreachable'), since: z.number(), error: z.string() }),
      z.object({ type: z.literal('stopped'), since: z.number(), reason: z.string() }),
    ]),
    nextOffset: z.number().int(),
    lastOffset: z.number().int().nullable(),
    lagEvents: z.number().int().nullable(),
    lagMs: z.number().nullable(),
    lastContactAt: z.number().nullable(),
    read: z.number().int(),
    duplicates: z.number().int(),
    healthy: z.boolean(),
  })
  .meta({ id: 'IngestStatus' });
const totalsSchema = z
  .object({
    messages: z.number().int().describe('distinct messages'),
    duplicates: z.number().int().describe('duplicates dropped'),
    devices: z.number().int(),
    devicesWithGaps: z.number().int(),
    missing: z.number().int().describe('sequence numbers never received, over every device'),
  })
  .meta({ id: 'Totals' });

// types.ts documents these answers; this fails to compile when a schema and its type drift apart.
export type _IngestStatusMatches = Expect<SameType<z.output<typeof ingestStatusSchema>, IngestStatus>>;
export type _TotalsMatch = Expect<
  SameType<z.output<typeof totalsSchema>, Awaited<ReturnType<AnalyticsQueries['totals']>>>
>;

export const ANALYTICS_ROUTES = {
  stopIngest: defineRoute({
    method: 'POST',
    url: '/v1/ingest/:region/stop',
    tags: ['analytics'],
    description: 'Fault injection: stop ingesting the region (its health answers 503) until resumed.',
    params: regionParam,
    body: z.object({ reason: z.string().trim().min(1, 'say why').max(1000) }).strict(),
    responses: { 200: ingestStatusSchema, ...errors },
  }),
  resumeIngest: defineRoute({
    method: 'POST',
    url: '/v1/ingest/:region/resume',
    tags: ['analytics'],
    description: 'Ingest the region again from where it stopped.',
    params: regionParam,
    responses: { 200: ingestStatusSchema, ...errors },
  }),
  totals: defineRoute({
    method: 'GET',
    url: '/v1/totals',
    tags: ['analytics'],
    description: 'Distinct messages, duplicates dropped, devices, devices with gaps, missing.',
    responses: { 200: totalsSchema, ...errors },
  }),
} as const;

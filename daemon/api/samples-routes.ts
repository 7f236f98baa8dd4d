/**
 * The samples resource (docs/api.md): `GET /v1/runs/:run/samples` (a sorted listing) and
 * `GET /v1/runs/:run/samples/:id` (one sample with its sums, features, history and explanation),
 * with their response schemas.
 */
import type { FastifyPluginAsync } from 'fastify';
import { MotiveError } from '../shared/index.js';
import type { SampleOrder } from '../influence/index.js';
import type { ApiDeps } from './app.js';
import { requireRun } from './edge.js';
import { errorResponses, runParams, sampleParams, tokenParam } from './schemas.js';
import { sampleMotionSchema } from './motion-schemas.js';
import { sampleMotion } from './sample-motion.js';
import { historyView, sampleExplain } from './sample-detail.js';

export const sampleSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    score: { type: 'number' },
    seen: { type: 'number' },
    votes: { type: 'integer' },
    weight: { type: 'number' },
    lastStep: { type: 'number' },
    fused: { type: ['number', 'null'] },
    check: { type: ['number', 'null'] },
    motion: sampleMotionSchema,
  },
  required: ['id', 'score', 'seen', 'votes', 'weight', 'lastStep', 'fused', 'check'],
} as const;

export const sampleDetailSchema = {
  type: 'object',
  properties: {
    ...sampleSchema.properties,
    querySums: { type: 'array', items: { type: 'number' } },
    queryIds: { type: 'array', items: { type: 'string' } },
    features: { type: 'object', additionalProperties: { type: 'number' } },
    history: {
      type: 'array',
      items: {
        type: 'object',
        properties: { seen: { type: 'integer' }, step: { type: 'number' }, score: { type: 'number' }, weight: { type: 'number' } },
        required: ['seen', 'step', 'score', 'weight'],
      },
    },
    explain: {
      type: 'object',
      properties: {
        group: { type: ['string', 'null'], enum: ['harmful', 'helpful', 'middle', null] },
        rank: { type: ['integer', 'null'] },
        profiled: { type: 'integer' },
        fraction: { type: 'number' },
        sentence: { type: 'string' },
        summary: { type: 'array', items: { type: 'string' } },
      },
      required: ['group', 'rank', 'profiled', 'fraction', 'sentence', 'summary'],
    },
  },
  required: [...sampleSchema.required, 'querySums', 'queryIds', 'features', 'history', 'explain'],
} as const;

export interface SamplesRoutesOptions {
  readonly deps: ApiDeps;
  /** Most samples one listing returns. */
  readonly maxListLimit: number;
}

export const samplesRoutes: FastifyPluginAsync<SamplesRoutesOptions> = async (app, { deps, maxListLimit }) => {
  const { store, views } = deps;
  app.get<{ Params: { run: string }; Querystring: { order: SampleOrder; limit: number } }>('/v1/runs/:run/samples', {
    schema: {
      params: runParams,
      querystring: {
        type: 'object',
        properties: {
          order: { type: 'string', enum: ['harmful', 'helpful', 'votes'], default: 'harmful' },
          limit: { type: 'integer', minimum: 1, maximum: maxListLimit, default: 50 },
          token: tokenParam,
        },
        additionalProperties: false,
      },
      response: {
        200: { type: 'object', properties: { samples: { type: 'array', items: sampleSchema } }, required: ['samples'] },
        ...errorResponses,
      },
    },
    handler: async (req) => ({
      samples: views
        .list(requireRun(store, req.params.run), req.query.order, req.query.limit)
        .map((s) => ({ ...s, motion: sampleMotion(store, s.id) })),
    }),
  });

  app.get<{ Params: { run: string; id: string }; Querystring: { fraction: number } }>('/v1/runs/:run/samples/:id', {
    schema: {
      params: sampleParams,
      querystring: {
        type: 'object',
        properties: { fraction: { type: 'number', exclusiveMinimum: 0, maximum: 0.5, default: 0.25 }, token: tokenParam },
        additionalProperties: false,
      },
      response: { 200: sampleDetailSchema, ...errorResponses },
    },
    handler: async (req) => {
      const run = requireRun(store, req.params.run);
      const s = run.samples.get(req.params.id);
      if (s === undefined) throw new MotiveError('MOTIVE_API_SAMPLE_NOT_FOUND', req.params.id);
      const querySums = run.queryIds.map((_, j) => run.sumAt(s, j));
      const features = run.features.named(s.id) ?? {};
      return {
        ...views.sample(run, s),
        querySums,
        queryIds: run.queryIds,
        features,
        motion: sampleMotion(store, s.id),
        history: historyView(store, run, s),
        explain: sampleExplain(store, run, s, req.query.fraction),
      };
    },
  });
};

/** `POST /v1/runs/:run/attribute` (docs/api.md): a new query scored against every sample of a run. */
import type { FastifyPluginAsync } from 'fastify';
import { MotiveError } from '../shared/index.js';
import type { ApiDeps } from './app.js';
import { requireRun, type RouteAccess } from './edge.js';
import { errorResponses, runParams } from './schemas.js';

export interface AttributeRoutesOptions {
  readonly deps: ApiDeps;
  /** Most samples one answer returns. */
  readonly maxListLimit: number;
}

export const attributeRoutes: FastifyPluginAsync<AttributeRoutesOptions> = async (app, { deps, maxListLimit }) => {
  const { store, engine } = deps;
  app.post<{ Params: { run: string }; Body: { sketch: number[]; limit?: number } }>('/v1/runs/:run/attribute', {
    config: { access: 'read' } satisfies RouteAccess,
    schema: {
      params: runParams,
      body: {
        type: 'object',
        properties: {
          sketch: { type: 'array', items: { type: 'number' }, minItems: 1 },
          limit: { type: 'integer', minimum: 1, maximum: maxListLimit, default: 20 },
        },
        required: ['sketch'],
        additionalProperties: false,
      },
      response: {
        200: {
          type: 'object',
          properties: {
            samples: {
              type: 'array',
              items: { type: 'object', properties: { id: { type: 'string' }, score: { type: 'number' } }, required: ['id', 'score'] },
            },
            scanned: { type: 'integer' },
            elapsedMs: { type: 'number' },
          },
          required: ['samples', 'scanned', 'elapsedMs'],
        },
        ...errorResponses,
      },
    },
    handler: async (req) => {
      const run = requireRun(store, req.params.run);
      const { sketch, limit = 20 } = req.body;
      if (sketch.length !== run.info.dim) {
        throw new MotiveError('MOTIVE_API_BAD_SKETCH', `sketch has ${sketch.length} values, the run's dim is ${run.info.dim}`);
      }
      const q = Float32Array.from(sketch);
      // Finite as float32 too: 1e308 is a JSON number but overflows the kernels.
      if (!q.every(Number.isFinite)) throw new MotiveError('MOTIVE_API_BAD_SKETCH', 'sketch holds NaN, Inf or values beyond float32 range');
      const started = performance.now();
      const samples = await engine.attribute(run, q, limit);
      return { samples, scanned: run.samples.size, elapsedMs: performance.now() - started };
    },
  });
};

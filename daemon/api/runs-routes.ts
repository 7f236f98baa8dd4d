/**
 * The runs resource (docs/api.md): `GET /v1/runs`, `GET /v1/runs/:run`, `GET /v1/runs/:run/weights`
 * and `DELETE /v1/runs/:run`, with their response schemas.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Authorizer } from '../shared/index.js';
import type { RunState } from '../store/index.js';
import type { ApiDeps } from './app.js';
import { requireRun, type RouteAccess } from './edge.js';
import { errorResponses, runParams } from './schemas.js';
import { sidecarDetail } from './sidecar-view.js';

export const runSummarySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    dim: { type: 'integer' },
    samples: { type: 'integer' },
    batches: { type: 'integer' },
    sketches: { type: 'integer' },
    lastStep: { type: 'number' },
    queries: { type: 'integer' },
    weightsVersion: { type: 'integer' },
    attachedTrainers: { type: 'integer' },
  },
  required: ['id', 'dim', 'samples', 'batches', 'sketches', 'lastStep', 'queries', 'weightsVersion', 'attachedTrainers'],
} as const;

export const runDetailSchema = {
  type: 'object',
  properties: {
    ...runSummarySchema.properties,
    dtype: { type: 'string' },
    scoreMode: { type: 'string' },
    worldSize: { type: 'integer' },
    createdAt: { type: 'string' },
    projection: {
      type: 'object',
      properties: { kind: { type: 'string' }, seed: { type: 'string' }, dim: { type: 'integer' }, fingerprint: { type: 'string' } },
      required: ['kind', 'seed', 'dim', 'fingerprint'],
    },
    queryIds: { type: 'array', items: { type: 'string' } },
    queryVersion: { type: 'integer' },
    querySets: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          version: { type: 'integer' },
          step: { type: 'number' },
          queries: { type: 'integer' },
          receivedAt: { type: 'string' },
        },
        required: ['version', 'step', 'queries', 'receivedAt'],
      },
    },
    voteThresholds: { type: 'array', items: { type: ['number', 'null'] } },
    ranks: {
      type: 'array',
      items: {
        type: 'object',
        properties: { rank: { type: 'integer' }, lastCommittedSeq: { type: 'integer' } },
        required: ['rank', 'lastCommittedSeq'],
      },
    },
    downweighted: { type: 'integer' },
    quarantined: { type: 'integer' },
    sidecar: {
      type: 'object',
      properties: {
        backlog: { type: 'integer' },
        leased: { type: 'integer' },
        created: { type: 'integer' },
        attributed: { type: 'integer' },
        dropped: { type: 'integer' },
        batches: { type: 'integer' },
        stalenessMean: { type: 'number' },
        stalenessMax: { type: 'number' },
      },
      required: ['backlog', 'leased', 'created', 'attributed', 'dropped', 'batches', 'stalenessMean', 'stalenessMax'],
    },
  },
  required: [
    ...runSummarySchema.required,
    'dtype',
    'scoreMode',
    'worldSize',
    'createdAt',
    'projection',
    'queryIds',
    'queryVersion',
    'querySets',
    'voteThresholds',
    'ranks',
    'downweighted',
    'quarantined',
  ],
} as const;

/** `GET /v1/runs/:run/weights`: every sample's weight at the run's weights version. */
const weightsSchema = {
  type: 'object',
  properties: {
    version: { type: 'integer' },
    policy: { type: 'string' },
    weights: { type: 'object', additionalProperties: { type: 'number' } },
  },
  required: ['version', 'policy', 'weights'],
} as const;

/** A run's summary: what the listing shows of it. */
function runSummary(run: RunState, attachedTrainers: number) {
  return {
    id: run.info.id,
    dim: run.info.dim,
    samples: run.samples.size,
    batches: run.batches,
    sketches: run.sketches,
    lastStep: run.lastStep,
    queries: run.queryIds.length,
    weightsVersion: run.weightsVersion,
    attachedTrainers,
  };
}

/** A run's detail: its summary, projection, query history, ranks, weight counts and side-car jobs. */
function runDetail(deps: ApiDeps, run: RunState, summary: ReturnType<typeof runSummary>) {
  let downweighted = 0;
  let quarantined = 0;
  for (const s of run.samples.values()) {
    if (s.weight < 1) downweighted++;
    if (s.weight === 0) quarantined++;
  }
  return {
    ...summary,
    dtype: run.info.dtype,
    scoreMode: run.info.scoreMode,
    worldSize: run.info.worldSize,
    createdAt: new Date(run.info.createdAtMs).toISOString(),
    projection: run.info.projection,
    queryIds: run.queryIds,
    queryVersion: run.latestQuerySet()?.version ?? 0,
    querySets: run.querySets.map((q) => ({
      version: q.version,
      step: q.step,
      queries: q.ids.length,
      receivedAt: new Date(q.receivedAtMs).toISOString(),
    })),
    voteThresholds: [...deps.views.thresholds(run)].map((t) => (Number.isFinite(t) ? t : null)),
    ranks: [...run.commits.entries()].sort((a, b) => a[0] - b[0]).map(([rank, seq]) => ({ rank, lastCommittedSeq: seq })),
    downweighted,
    quarantined,
    ...sidecarDetail(deps.store, run.info.id),
  };
}

/** The runs routes, with the daemon's parts they read. */
export const runsRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  const { store, weighting, engine, detachRun, log } = deps;
  const summary = (run: RunState) => runSummary(run, deps.attachedCounts().get(run.info.id) ?? 0);

  app.get('/v1/runs', {
    config: { spansRuns: 'filtered' } satisfies RouteAccess,
    schema: {
      response: { 200: { type: 'object', properties: { runs: { type: 'array', items: runSummarySchema } }, required: ['runs'] } },
    },
    handler: async (req) => ({
      runs: store
        .runs()
        .filter((r) => Authorizer.canSeeRun(req.grant, r.info.id))
        .map(summary),
    }),
  });

  app.get<{ Params: { run: string } }>('/v1/runs/:run', {
    schema: { params: runParams, response: { 200: runDetailSchema, ...errorResponses } },
    handler: async (req) => {
      const run = requireRun(store, req.params.run);
      return runDetail(deps, run, summary(run));
    },
  });

  app.get<{ Params: { run: string } }>('/v1/runs/:run/weights', {
    schema: {
      params: runParams,
      response: {
        200: weightsSchema,
        ...errorResponses,
      },
    },
    handler: async (req) => {
      const run = requireRun(store, req.params.run);
      const weights: Record<string, number> = {};
      for (const s of run.samples.values()) weights[s.id] = s.weight;
      return { version: run.weightsVersion, policy: weighting.policy, weights };
    },
  });

  app.delete<{ Params: { run: string } }>('/v1/runs/:run', {
    config: { access: 'admin' } satisfies RouteAccess,
    schema: {
      params: runParams,
      response: { 200: { type: 'object', properties: { deleted: { type: 'string' } }, required: ['deleted'] }, ...errorResponses },
    },
    handler: async (req) => {
      requireRun(store, req.params.run);
      detachRun(req.params.run);
      await engine.drained();
      await store.deleteRun(req.params.run);
      log.info({ runId: req.params.run, by: req.grant?.name ?? 'anonymous' }, 'run deleted');
      return { deleted: req.params.run };
    },
  });
};

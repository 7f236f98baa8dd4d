/**
 * The REST edge (fastify). Every route has JSON Schemas for its input and output; errors leave
 * as `{ code, message }` with the status from the error registry.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Authorizer, ErrorCodes, MotiveError, httpToken, isMotiveError, type Action, type Grant, type Logger } from '../shared/index.js';
import type { InfluenceEngine, RunViews, SampleOrder } from '../influence/index.js';
import type { RunState, Store } from '../store/index.js';
import { sidecarDetail } from './sidecar-view.js';
import type { WeightingService } from '../weighting/index.js';
import {
  errorSchema,
  tokenParam,
  runDetailSchema,
  runParams,
  runSummarySchema,
  sampleDetailSchema,
  sampleParams,
  sampleSchema,
} from './schemas.js';
import { sampleMotion } from './motion-routes.js';
import { backupTargetProblem } from './backup-target.js';
import { historyView, sampleExplain } from './sample-detail.js';

export interface ApiDeps {
  readonly store: Store;
  readonly engine: InfluenceEngine;
  readonly views: RunViews;
  readonly weighting: WeightingService;
  readonly log: Logger;
  /** Tokens and roles; every route but `/healthz` needs a token when any is configured. */
  readonly auth: Authorizer;
  /** Attached trainer streams per run (from ingest). */
  readonly attachedCounts: () => Map<string, number>;
  /** Ends the trainer streams of a deleted run. */
  readonly detachRun: (runId: string) => void;
  readonly version: string;
  /** The store's directory: backups may not go into it. */
  readonly dataDir: string;
}

export interface ApiOptions {
  readonly maxListLimit: number;
  /** Body limit of POST requests in bytes; a k-dim sketch as JSON needs about 24·k bytes. */
  readonly bodyLimitBytes: number;
  /** Serve HTTPS with this PEM key pair. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

/**
 * Per-route access: `config: { access: 'public' | Action }`. Without it, GET/HEAD routes need
 * `read` and every other method `admin`. Routes with a `:run` parameter also check the token's
 * run list. A route without one spans every run, so a token limited to some runs is refused there
 * unless the route shows each token only its own runs (`spansRuns: 'filtered'`: the run listing,
 * `/metrics`, the page): new routes are closed to such tokens until they say otherwise
 * (docs/security.md).
 */
export interface RouteAccess {
  readonly access?: 'public' | Action;
  readonly spansRuns?: 'filtered';
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The token's identity; null when auth is off. */
    grant: Grant | null;
  }
}

/** `message` with the value of every `token=` parameter it quotes replaced, so no error body echoes a secret. */
export function redactTokens(message: string): string {
  return message.replace(/([?&]token=)[^&#\s"'<>]*/gi, '$1<redacted>');
}

/** A plain decimal number, as a query string may carry one (no `Infinity`, `0x10`, blanks). */
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Turns the query parameters that the route's schema types as numbers into numbers, when they are
 * plain finite decimals; anything else stays a string, which the schema then refuses.
 */
function coerceQuery(req: FastifyRequest): void {
  const schema = req.routeOptions.schema?.querystring as { properties?: Record<string, { type?: unknown }> } | undefined;
  const props = schema?.properties;
  const query = req.query as Record<string, unknown> | undefined;
  if (props === undefined || query === undefined) return;
  for (const [name, prop] of Object.entries(props)) {
    const v = query[name];
    if ((prop.type !== 'integer' && prop.type !== 'number') || typeof v !== 'string' || !DECIMAL.test(v)) continue;
    const n = Number(v);
    if (Number.isFinite(n)) query[name] = n;
  }
}

/** Builds the fastify app (not listening). Extra route plugins can be registered by the caller. */
export function buildApi(deps: ApiDeps, options: ApiOptions): FastifyInstance {
  const base = {
    logger: false,
    // An API, not a form handler: JSON bodies are taken as sent (no `"1e3"` → 1000, `null` → 0,
    // `true` → 1), and an unknown property is refused, not dropped. Query strings are strings:
    // `coerceQuery` turns plain decimal numbers into numbers first.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
    bodyLimit: options.bodyLimitBytes,
    // Sample ids may be as long as the wire allows (limits.maxSampleIdBytes), URL-encoded.
    routerOptions: { maxParamLength: 4096 },
    // Router-level failures (bad URL escapes and the like) answer with a registered code too.
    frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      const status = err.statusCode !== undefined && err.statusCode < 500 ? err.statusCode : 400;
      void reply.code(status).send({ code: 'MOTIVE_API_BAD_REQUEST', message: redactTokens(err.message) });
    },
  };
  const app =
    options.tls === undefined
      ? Fastify(base)
      : (Fastify({ ...base, https: { cert: options.tls.cert, key: options.tls.key } }) as unknown as FastifyInstance);
  const { store, views } = deps;

  app.decorateRequest('grant', null);
  app.addHook('onRequest', async (req) => {
    if (!deps.auth.enabled) return;
    const access = (req.routeOptions.config as RouteAccess).access ?? (req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'admin');
    if (access === 'public') return;
    const runId = (req.params as { run?: unknown } | undefined)?.run;
    const scoped = typeof runId === 'string' ? runId : undefined;
    const verdict = deps.auth.check(httpToken(req.headers, req.url), access, scoped);
    if (!verdict.ok) throw new MotiveError(verdict.reason === 'unauthenticated' ? 'MOTIVE_API_UNAUTHENTICATED' : 'MOTIVE_API_FORBIDDEN');
    const spans = (req.routeOptions.config as RouteAccess).spansRuns;
    if (verdict.grant?.runs != null && scoped === undefined && spans !== 'filtered' && !req.is404) {
      throw new MotiveError('MOTIVE_API_FORBIDDEN', 'this route spans every run; it needs a token not limited to runs');
    }
    req.grant = verdict.grant;
  });

  app.addHook('preValidation', async (req) => coerceQuery(req));

  app.setErrorHandler((err, _req, reply) => {
    if (isMotiveError(err)) return reply.status(err.status).send({ code: err.code, message: err.message });
    const e = err as { validation?: Array<{ instancePath?: string }>; validationContext?: string; statusCode?: number; message: string };
    if (e.validationContext === 'body' && e.validation?.some((v) => v.instancePath?.startsWith('/sketch') === true)) {
      return reply
        .status(400)
        .send({ code: 'MOTIVE_API_BAD_SKETCH', message: `${ErrorCodes.MOTIVE_API_BAD_SKETCH.message}: ${e.message}` });
    }
    if (e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500)) {
      return reply.status(e.statusCode ?? 400).send({ code: 'MOTIVE_API_BAD_REQUEST', message: redactTokens(e.message) });
    }
    deps.log.error({ err }, 'request failed');
    return reply.status(500).send({ code: 'MOTIVE_API_INTERNAL', message: ErrorCodes.MOTIVE_API_INTERNAL.message });
  });

  // Unknown routes answer like every other error; the path is named without its query string,
  // which may hold a token.
  app.setNotFoundHandler(async (req, reply) => {
    const path = req.url.split('?')[0]!.slice(0, 256);
    return reply
      .status(404)
      .send({ code: 'MOTIVE_API_NOT_FOUND', message: new MotiveError('MOTIVE_API_NOT_FOUND', `${req.method} ${path}`).message });
  });

  const getRun = (id: string): RunState => {
    const run = store.run(id);
    if (run === undefined) throw new MotiveError('MOTIVE_API_RUN_NOT_FOUND', id);
    return run;
  };
  const summary = (run: RunState) => ({
    id: run.info.id,
    dim: run.info.dim,
    samples: run.samples.size,
    batches: run.batches,
    sketches: run.sketches,
    lastStep: run.lastStep,
    queries: run.queryIds.length,
    weightsVersion: run.weightsVersion,
    attachedTrainers: deps.attachedCounts().get(run.info.id) ?? 0,
  });
  const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

  app.get('/healthz', {
    config: { access: 'public' } satisfies RouteAccess,
    schema: {
      response: {
        200: {
          type: 'object',
          properties: {
            status: { type: 'string' },
            daemon: { type: 'string' },
            runs: { type: 'integer' },
            queueDepth: { type: 'integer' },
          },
          required: ['status', 'daemon', 'runs', 'queueDepth'],
        },
      },
    },
    handler: async () => ({ status: 'ok', daemon: deps.version, runs: store.runs().length, queueDepth: deps.engine.queueDepth }),
  });

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
    schema: { params: runParams, response: { 200: runDetailSchema, ...errors } },
    handler: async (req) => {
      const run = getRun(req.params.run);
      let downweighted = 0;
      let quarantined = 0;
      for (const s of run.samples.values()) {
        if (s.weight < 1) downweighted++;
        if (s.weight === 0) quarantined++;
      }
      return {
        ...summary(run),
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
        voteThresholds: [...views.thresholds(run)].map((t) => (Number.isFinite(t) ? t : null)),
        ranks: [...run.commits.entries()].sort((a, b) => a[0] - b[0]).map(([rank, seq]) => ({ rank, lastCommittedSeq: seq })),
        downweighted,
        quarantined,
        ...sidecarDetail(store, run.info.id),
      };
    },
  });

  app.get<{ Params: { run: string }; Querystring: { order: SampleOrder; limit: number } }>('/v1/runs/:run/samples', {
    schema: {
      params: runParams,
      querystring: {
        type: 'object',
        properties: {
          order: { type: 'string', enum: ['harmful', 'helpful', 'votes'], default: 'harmful' },
          limit: { type: 'integer', minimum: 1, maximum: options.maxListLimit, default: 50 },
          token: tokenParam,
        },
        additionalProperties: false,
      },
      response: {
        200: { type: 'object', properties: { samples: { type: 'array', items: sampleSchema } }, required: ['samples'] },
        ...errors,
      },
    },
    handler: async (req) => ({
      samples: views
        .list(getRun(req.params.run), req.query.order, req.query.limit)
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
      response: { 200: sampleDetailSchema, ...errors },
    },
    handler: async (req) => {
      const run = getRun(req.params.run);
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

  app.get<{ Params: { run: string } }>('/v1/runs/:run/weights', {
    schema: {
      params: runParams,
      response: {
        200: {
          type: 'object',
          properties: {
            version: { type: 'integer' },
            policy: { type: 'string' },
            weights: { type: 'object', additionalProperties: { type: 'number' } },
          },
          required: ['version', 'policy', 'weights'],
        },
        ...errors,
      },
    },
    handler: async (req) => {
      const run = getRun(req.params.run);
      const weights: Record<string, number> = {};
      for (const s of run.samples.values()) weights[s.id] = s.weight;
      return { version: run.weightsVersion, policy: deps.weighting.policy, weights };
    },
  });

  app.delete<{ Params: { run: string } }>('/v1/runs/:run', {
    config: { access: 'admin' } satisfies RouteAccess,
    schema: {
      params: runParams,
      response: { 200: { type: 'object', properties: { deleted: { type: 'string' } }, required: ['deleted'] }, ...errors },
    },
    handler: async (req) => {
      getRun(req.params.run);
      deps.detachRun(req.params.run);
      await deps.engine.drained();
      await store.deleteRun(req.params.run);
      deps.log.info({ runId: req.params.run, by: req.grant?.name ?? 'anonymous' }, 'run deleted');
      return { deleted: req.params.run };
    },
  });

  app.post<{ Body: { dir: string } }>('/v1/admin/backup', {
    config: { access: 'admin' } satisfies RouteAccess,
    schema: {
      body: {
        type: 'object',
        properties: { dir: { type: 'string', minLength: 1, maxLength: 4096 } },
        required: ['dir'],
        additionalProperties: false,
      },
      response: {
        200: {
          type: 'object',
          properties: { dir: { type: 'string' }, bytes: { type: 'integer' }, elapsedMs: { type: 'number' } },
          required: ['dir', 'bytes', 'elapsedMs'],
        },
        ...errors,
        500: errorSchema,
      },
    },
    handler: async (req) => {
      const problem = backupTargetProblem(req.body.dir, deps.dataDir);
      if (problem !== undefined) throw new MotiveError('MOTIVE_API_BACKUP_TARGET', problem);
      const started = performance.now();
      let bytes: number;
      try {
        bytes = await store.backup(req.body.dir);
      } catch (err) {
        throw new MotiveError('MOTIVE_API_BACKUP', (err as Error).message, { cause: err });
      }
      deps.log.info({ dir: req.body.dir, bytes, by: req.grant?.name ?? 'anonymous' }, 'backup written');
      return { dir: req.body.dir, bytes, elapsedMs: performance.now() - started };
    },
  });

  app.post<{ Params: { run: string }; Body: { sketch: number[]; limit?: number } }>('/v1/runs/:run/attribute', {
    config: { access: 'read' } satisfies RouteAccess,
    schema: {
      params: runParams,
      body: {
        type: 'object',
        properties: {
          sketch: { type: 'array', items: { type: 'number' }, minItems: 1 },
          limit: { type: 'integer', minimum: 1, maximum: options.maxListLimit, default: 20 },
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
        ...errors,
      },
    },
    handler: async (req) => {
      const run = getRun(req.params.run);
      const { sketch, limit = 20 } = req.body;
      if (sketch.length !== run.info.dim) {
        throw new MotiveError('MOTIVE_API_BAD_SKETCH', `sketch has ${sketch.length} values, the run's dim is ${run.info.dim}`);
      }
      const q = Float32Array.from(sketch);
      // Finite as float32 too: 1e308 is a JSON number but overflows the kernels.
      if (!q.every(Number.isFinite)) throw new MotiveError('MOTIVE_API_BAD_SKETCH', 'sketch holds NaN, Inf or values beyond float32 range');
      const started = performance.now();
      const samples = await deps.engine.attribute(run, q, limit);
      return { samples, scanned: run.samples.size, elapsedMs: performance.now() - started };
    },
  });

  return app;
}

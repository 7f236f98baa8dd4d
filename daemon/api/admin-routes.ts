/** The daemon itself (docs/api.md): `GET /healthz` (public) and `POST /v1/admin/backup`. */
import type { FastifyPluginAsync } from 'fastify';
import { MotiveError } from '../shared/index.js';
import type { ApiDeps } from './app.js';
import type { RouteAccess } from './edge.js';
import { errorResponses, errorSchema } from './schemas.js';
import { backupTargetProblem } from './backup-target.js';

export const adminRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  const { store, engine, log, dataDir, version } = deps;
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
    handler: async () => ({ status: 'ok', daemon: version, runs: store.runs().length, queueDepth: engine.queueDepth }),
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
        ...errorResponses,
        500: errorSchema,
      },
    },
    handler: async (req) => {
      const problem = backupTargetProblem(req.body.dir, dataDir);
      if (problem !== undefined) throw new MotiveError('MOTIVE_API_BACKUP_TARGET', problem);
      const started = performance.now();
      let bytes: number;
      try {
        bytes = await store.backup(req.body.dir);
      } catch (err) {
        throw new MotiveError('MOTIVE_API_BACKUP', (err as Error).message, { cause: err });
      }
      log.info({ dir: req.body.dir, bytes, by: req.grant?.name ?? 'anonymous' }, 'backup written');
      return { dir: req.body.dir, bytes, elapsedMs: performance.now() - started };
    },
  });
};

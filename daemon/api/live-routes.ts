/**
 * The live feed's HTTP side: the built-in page at `/` that draws the feed, and
 * `GET /v1/runs/:run/downweighted/recent`, the run's latest first-time down-weightings.
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { RecentDownweight } from './live-events.js';
import { tokenParam } from './schemas.js';

const PAGE_URL = new URL('./page/index.html', import.meta.url);

export interface LiveRoutesDeps {
  /** Most rows the list may ask for (`limit`). */
  readonly recentLimit: number;
  readonly recentDownweighted: (
    runId: string,
    limit: number,
  ) => { samples: Array<RecentDownweight & { at: string; score: number; currentWeight: number }> };
}

export function registerLiveRoutes(app: FastifyInstance, deps: LiveRoutesDeps): void {
  let page: Promise<string> | undefined;
  // The page needs `read` (docs/security.md); it passes the `?token=` it was opened with on to
  // the requests it makes, which each check it again.
  app.get('/', { config: { spansRuns: 'filtered' } }, async (_req, reply) => {
    page ??= readFile(PAGE_URL, 'utf8');
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(await page);
  });
  app.get<{ Params: { run: string }; Querystring: { limit: number } }>('/v1/runs/:run/downweighted/recent', {
    schema: {
      params: { type: 'object', properties: { run: { type: 'string', minLength: 1 } }, required: ['run'] },
      querystring: {
        type: 'object',
        properties: { limit: { type: 'integer', minimum: 1, maximum: deps.recentLimit, default: 50 }, token: tokenParam },
        additionalProperties: false,
      },
    },
    handler: async (req) => deps.recentDownweighted(req.params.run, req.query.limit),
  });
}

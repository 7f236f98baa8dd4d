/**
 * The clip page (`GET /runs/:run/clips/:id`, docs/observability.md): one sample's score and weight
 * over training steps, its per-query sums, motion descriptors, previews and the `/explain`
 * sentence. A static file; the page reads `GET /v1/runs/:run/samples/:id` and the preview route.
 * It needs `read` for the run like the run's routes (docs/security.md), and passes the `?token=` it
 * was opened with on to its requests, which check it again.
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { sampleParams, tokenParam } from './schemas.js';

const CLIP_PAGE_URL = new URL('./page/clip.html', import.meta.url);

/** Registers the clip page on the REST app. */
export function registerClipPage(app: FastifyInstance): void {
  let page: Promise<string> | undefined;
  app.get<{ Params: { run: string; id: string } }>('/runs/:run/clips/:id', {
    schema: {
      params: sampleParams,
      querystring: { type: 'object', properties: { token: tokenParam }, additionalProperties: false },
    },
    handler: async (_req, reply) => {
      page ??= readFile(CLIP_PAGE_URL, 'utf8');
      return reply
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-cache')
        .send(await page);
    },
  });
}

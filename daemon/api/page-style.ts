/**
 * `GET /page/motive.css`: the stylesheet the daemon's pages share (the live page at `/`, the clip
 * page). Public: a stylesheet holds no data, and a page's `<link>` cannot carry the `?token=` the
 * page was opened with (docs/security.md).
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { RouteAccess } from './edge.js';

const STYLE_URL = new URL('./page/motive.css', import.meta.url);

/** Registers the shared stylesheet on the REST app. */
export function registerPageStyle(app: FastifyInstance): void {
  let style: Promise<string> | undefined;
  app.get('/page/motive.css', { config: { access: 'public' } satisfies RouteAccess }, async (_req, reply) => {
    style ??= readFile(STYLE_URL, 'utf8');
    return reply
      .header('content-type', 'text/css; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(await style);
  });
}

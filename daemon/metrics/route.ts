/** `GET /metrics`: the Prometheus text exposition of a {@link MotiveMetrics}. */
import type { FastifyInstance } from 'fastify';
import type { MotiveMetrics } from './metrics.js';

/** Adds `GET /metrics` to `app`. */
export function registerMetricsRoute(app: FastifyInstance, metrics: MotiveMetrics): void {
  app.get('/metrics', async (_req, reply) => {
    const body = await metrics.render();
    return reply.header('content-type', metrics.contentType).header('cache-control', 'no-store').send(body);
  });
}

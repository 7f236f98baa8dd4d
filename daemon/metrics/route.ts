/** `GET /metrics`: the Prometheus text exposition of a {@link MotiveMetrics}. */
import type { FastifyInstance } from 'fastify';
import type { MotiveMetrics } from './metrics.js';

/**
 * The value of the `run` label of one sample line of the text exposition, unescaped; undefined
 * when the line has no such label. Label values escape `\\`, `"` and newlines, so the labels are
 * read one by one rather than searched for.
 */
export function runLabel(line: string): string | undefined {
  const open = line.indexOf('{');
  if (open < 0 || line.startsWith('#')) return undefined;
  let i = open + 1;
  while (i < line.length && line[i] !== '}') {
    const eq = line.indexOf('=', i);
    if (eq < 0 || line[eq + 1] !== '"') return undefined;
    const name = line.slice(i, eq).trim();
    let value = '';
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === '\\') {
        j++;
        value += line[j] === 'n' ? '\n' : (line[j] ?? '');
      } else value += line[j] ?? '';
    }
    if (name === 'run') return value;
    i = j + 1;
    if (line[i] === ',') i++;
  }
  return undefined;
}

/** The exposition without the series of runs outside `runs` (series without a run label stay). */
export function filterRunSeries(text: string, runs: readonly string[]): string {
  const allowed = new Set(runs);
  return text
    .split('\n')
    .filter((line) => {
      const run = runLabel(line);
      return run === undefined || allowed.has(run);
    })
    .join('\n');
}

/**
 * Adds `GET /metrics`. A token limited to some runs sees only their series, and the series that
 * belong to no run (process, queue and totals).
 */
export function registerMetricsRoute(app: FastifyInstance, metrics: MotiveMetrics): void {
  app.get('/metrics', { config: { spansRuns: 'filtered' } }, async (req, reply) => {
    const body = await metrics.render();
    const runs = req.grant?.runs ?? null;
    return reply
      .header('content-type', metrics.contentType)
      .header('cache-control', 'no-store')
      .send(runs === null ? body : filterRunSeries(body, runs));
  });
}

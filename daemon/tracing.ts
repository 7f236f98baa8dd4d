/**
 * The Ack-path trace's subscriptions (`MOTIVE_TRACE_FILE`, daemon/shared/trace.ts): the trace
 * hears acknowledged batches and recompute stretches on their channels (docs/observability.md,
 * "Channels") instead of being called by ingest and the weighting service. The engine's and the
 * store's own trace events (batch, commit, flush) are still written where they happen.
 */
import { ingestBatchAcked, trace, type Logger } from './shared/index.js';
import { recomputeStretches } from './weighting/index.js';

/** Opens the trace at `file` and subscribes it; returns what closes both. */
export function startTracing(file: string, log: Logger): () => void {
  trace.open(file);
  const onError = (err: unknown): void => log.error({ err }, 'trace subscriber failed');
  const unsubscribe = [
    ingestBatchAcked.subscribe(undefined, (a) => trace.event('ack', a.rank, a.seq, a.receivedAt, a.submittedAt, a.ackedAt), onError),
    recomputeStretches.subscribe(undefined, (s) => trace.event('recompute', s.start, s.end), onError),
  ];
  return () => {
    for (const u of unsubscribe) u();
    trace.close();
  };
}

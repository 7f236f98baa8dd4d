/**
 * Engine metrics (docs/observability.md): batches committed, group commit durations, where a batch
 * waits between its acceptance and its Ack (`motive_ingest_stage_seconds`), query-set versions
 * committed, and the queue. Fed by the engine's commit events; the queue is read at scrape time.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CommitEvent, InfluenceEngine } from '../influence/index.js';
import { LATENCY_BUCKETS_SECONDS } from './buckets.js';

export class EngineMetrics {
  private readonly batchesCommitted: Counter<'run'>;
  private readonly commitSeconds: Histogram<'run'>;
  private readonly stageSeconds: Histogram<'stage'>;
  private readonly queryRefreshes: Counter<'run'>;

  constructor(registry: Registry, engine: InfluenceEngine) {
    const registers = [registry];
    this.batchesCommitted = new Counter({
      name: 'motive_batches_committed_total',
      help: 'Batches durably committed (duplicates excluded).',
      labelNames: ['run'],
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'motive_commit_duration_seconds',
      help: 'Duration of group commits: the durable store transaction, waiting for the commit before it included.',
      labelNames: ['run'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: 'motive_ingest_stage_seconds',
      help: 'Where a batch waits between being accepted and its Ack: wait (queued for a group), score (the group prepared: lookups, products; streamed sketches of cosine runs are normalised earlier, as they are decoded), queued (prepared, waiting for the previous commit), commit (the durable transaction), apply (memory); score, queued, commit and apply once per group and run.',
      labelNames: ['stage'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.queryRefreshes = new Counter({
      name: 'motive_query_refreshes_total',
      help: 'Query-set versions committed.',
      labelNames: ['run'],
      registers,
    });
    new Gauge({
      name: 'motive_queue_depth',
      help: 'Batches and query sets waiting for a group commit.',
      registers,
      collect() {
        this.set(engine.queueDepth);
      },
    });
    new Gauge({
      name: 'motive_queue_bytes',
      help: 'Wire bytes of the items queued or being committed.',
      registers,
      collect() {
        this.set(engine.queuedBytes);
      },
    });
  }

  /** One group commit of one run. */
  onCommit(e: CommitEvent): void {
    const labels = { run: e.runId };
    this.commitSeconds.observe(labels, e.commitMs / 1000);
    for (const ms of e.stages.waitMs) this.stageSeconds.observe({ stage: 'wait' }, ms / 1000);
    if (e.batches > 0) {
      this.batchesCommitted.inc(labels, e.batches);
      this.stageSeconds.observe({ stage: 'score' }, e.stages.scoreMs / 1000);
      this.stageSeconds.observe({ stage: 'queued' }, e.stages.queuedMs / 1000);
      this.stageSeconds.observe({ stage: 'commit' }, e.stages.durableMs / 1000);
      this.stageSeconds.observe({ stage: 'apply' }, e.stages.applyMs / 1000);
    }
    if (e.querySets.length > 0) this.queryRefreshes.inc(labels, e.querySets.length);
  }

  /** The run's counters at 0 where nothing was counted yet. */
  initRun(runId: string): void {
    const labels = { run: runId };
    this.batchesCommitted.inc(labels, 0);
    this.queryRefreshes.inc(labels, 0);
  }
}

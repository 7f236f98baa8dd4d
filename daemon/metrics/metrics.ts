/**
 * The daemon's Prometheus metrics, on a registry owned by the daemon (no global default registry).
 * Labels are bounded: `run` (one per run), `code` (error codes, a fixed set), `type` / `reason`
 * (fixed sets). Sample ids never become labels. Per-run state (samples, weights, scores, query
 * sets) is read at scrape time from the store's in-memory index, so it is always current and costs
 * nothing between scrapes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { LiveFeedStats } from '../api/live.js';
import { DistributionCache, SCORE_QUANTILES, WEIGHT_BUCKETS, type CommitEvent, type InfluenceEngine } from '../influence/index.js';
import type { Store } from '../store/index.js';
import type { WeightUpdateEvent } from '../weighting/index.js';
import { ErrorCodes } from '../shared/index.js';
import { registerSidecarMetrics } from './sidecar.js';

export interface MetricsDeps {
  readonly store: Store;
  readonly engine: InfluenceEngine;
  /** Attached trainer streams per run. */
  readonly attachedCounts: () => Map<string, number>;
  /** Live feed counters, when the feed runs. */
  readonly liveStats?: () => LiveFeedStats;
  /** The live feed's event types, shown at 0 before the first is sent. */
  readonly liveEventTypes?: readonly string[];
}

/** Codes ingest may refuse a message with: every `MOTIVE_INGEST_*` code of the registry. */
export const INGEST_REJECT_CODES: readonly string[] = Object.keys(ErrorCodes).filter((c) => c.startsWith('MOTIVE_INGEST_'));

/** Buckets of the latency histograms, in seconds: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface SnapshotValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * A histogram or summary whose whole state is computed at scrape time (the distribution of
 * current weights is a snapshot, not a stream of observations, so prom-client's accumulating
 * Histogram does not fit). Speaks prom-client's metric-object protocol.
 */
class SnapshotMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram' | 'summary';
  readonly aggregator = 'sum';
  private readonly compute: () => SnapshotValue[];

  constructor(name: string, help: string, type: 'histogram' | 'summary', compute: () => SnapshotValue[]) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.compute = compute;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: SnapshotValue[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.compute() });
  }

  reset(): void {
    // Nothing accumulates: every scrape recomputes.
  }

  collect(): void {
    // Values come from get().
  }
}

/**
 * Every Motive metric. Feed it the ingest observations (it satisfies the ingest observer's shape)
 * and the engine / weighting events through {@link MotiveMetrics.onCommit} and
 * {@link MotiveMetrics.onWeightUpdate}; render with `registry.metrics()`.
 */
export class MotiveMetrics {
  readonly registry: Registry;
  private readonly batchesIngested: Counter<'run'>;
  private readonly sketchesIngested: Counter<'run'>;
  private readonly bytesIngested: Counter<'run'>;
  private readonly batchesCommitted: Counter<'run'>;
  private readonly rejected: Counter<'code'>;
  private readonly commitSeconds: Histogram<'run'>;
  private readonly ackSeconds: Histogram<'run'>;
  private readonly stageSeconds: Histogram<'stage'>;
  private readonly feedbackSeconds: Histogram<'run'>;
  private readonly weightUpdates: Counter<'run'>;
  private readonly newlyDownweighted: Counter<'run'>;
  private readonly queryRefreshes: Counter<'run'>;
  private readonly attachEvents: Counter<'run' | 'event'>;
  /** run → time (performance.now ms) of the oldest commit not yet reflected in a weight update. */
  private readonly feedbackPendingSince = new Map<string, number>();
  private readonly distributions = new DistributionCache();
  private readonly store: Store;

  constructor(deps: MetricsDeps, options: { readonly processMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    this.store = deps.store;
    const registers = [registry];
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: registry });
      // prom-client also exports these totals as gauges named `_total`, which Prometheus reserves for
      // counters (promtool rejects them); the per-type gauges without the suffix carry the same data.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        registry.removeSingleMetric(name);
      }
    }

    this.batchesIngested = new Counter({
      name: 'motive_batches_ingested_total',
      help: 'Sketch batches accepted from trainers.',
      labelNames: ['run'],
      registers,
    });
    this.sketchesIngested = new Counter({
      name: 'motive_sketches_ingested_total',
      help: 'Per-sample sketches accepted from trainers.',
      labelNames: ['run'],
      registers,
    });
    this.bytesIngested = new Counter({
      name: 'motive_ingest_bytes_total',
      help: 'Sketch payload bytes accepted from trainers.',
      labelNames: ['run'],
      registers,
    });
    this.batchesCommitted = new Counter({
      name: 'motive_batches_committed_total',
      help: 'Batches durably committed (duplicates excluded).',
      labelNames: ['run'],
      registers,
    });
    this.rejected = new Counter({
      name: 'motive_ingest_rejected_total',
      help: 'Trainer messages refused, by error code.',
      labelNames: ['code'],
      registers,
    });
    // Known label values start at 0, so a dashboard panel shows 0 instead of "No data" before the first.
    for (const code of INGEST_REJECT_CODES) this.rejected.inc({ code }, 0);
    this.commitSeconds = new Histogram({
      name: 'motive_commit_duration_seconds',
      help: 'Duration of group commits: the durable store transaction, waiting for the commit before it included.',
      labelNames: ['run'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.ackSeconds = new Histogram({
      name: 'motive_ack_latency_seconds',
      help: 'From a batch being accepted to its Ack being sent (queueing plus commit).',
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
    this.feedbackSeconds = new Histogram({
      name: 'motive_feedback_latency_seconds',
      help: 'From the oldest commit not yet reflected in an announced weight update to that update (a recompute that moves no weight announces nothing, so the wait runs on).',
      labelNames: ['run'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.weightUpdates = new Counter({
      name: 'motive_weight_updates_total',
      help: 'Weight updates (new weights versions) announced.',
      labelNames: ['run'],
      registers,
    });
    this.newlyDownweighted = new Counter({
      name: 'motive_samples_downweighted_events_total',
      help: 'Samples whose weight dropped below 1 for the first time.',
      labelNames: ['run'],
      registers,
    });
    this.queryRefreshes = new Counter({
      name: 'motive_query_refreshes_total',
      help: 'Query-set versions committed.',
      labelNames: ['run'],
      registers,
    });
    this.attachEvents = new Counter({
      name: 'motive_trainer_attach_events_total',
      help: 'Trainer streams attached and detached.',
      labelNames: ['run', 'event'],
      registers,
    });

    const { store, engine } = deps;
    registerSidecarMetrics(registry, store);
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
    new Gauge({
      name: 'motive_store_size_bytes',
      help: 'Bytes the embedded store occupies.',
      registers,
      collect() {
        this.set(store.sizeBytes());
      },
    });
    new Gauge({
      name: 'motive_store_dirty_samples',
      help: 'Samples whose newest state is only in the write-ahead log and in memory (not flushed yet).',
      registers,
      collect() {
        this.set(store.flushStats().dirtySamples);
      },
    });
    new Gauge({
      name: 'motive_store_log_entries',
      help: 'Write-ahead log entries not trimmed yet.',
      registers,
      collect() {
        this.set(store.flushStats().logEntries);
      },
    });
    new Counter({
      name: 'motive_store_flushed_samples_total',
      help: 'Sample records and weight entries written by the flusher.',
      registers,
      collect() {
        this.reset();
        this.inc(store.flushStats().samplesFlushed);
      },
    });
    new Counter({
      name: 'motive_store_compacted_bytes_total',
      help: 'Bytes of superseded sample records and weight entries reclaimed by record-segment compaction.',
      registers,
      collect() {
        this.reset();
        this.inc(store.flushStats().bytesCompacted);
      },
    });
    new Gauge({
      name: 'motive_store_flush_last_seconds',
      help: 'Duration of the last flush cycle.',
      registers,
      collect() {
        this.set(store.flushStats().lastCycleMs / 1000);
      },
    });
    new Gauge({
      name: 'motive_runs',
      help: 'Runs the daemon knows.',
      registers,
      collect() {
        this.set(store.runs().length);
      },
    });
    const perRun = (name: string, help: string, value: (runId: string) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['run'],
        registers,
        collect() {
          this.reset();
          for (const run of store.runs()) this.set({ run: run.info.id }, value(run.info.id));
        },
      });
    };
    const runOf = (id: string) => store.run(id);
    new Gauge({
      name: 'motive_attached_trainers',
      help: 'Trainer streams attached, per run.',
      labelNames: ['run'],
      registers,
      collect() {
        this.reset();
        const attached = deps.attachedCounts();
        for (const run of store.runs()) this.set({ run: run.info.id }, attached.get(run.info.id) ?? 0);
      },
    });
    perRun('motive_samples_tracked', 'Samples with evidence in the run.', (id) => runOf(id)?.samples.size ?? 0);
    perRun('motive_samples_downweighted', 'Samples whose current weight is below 1.', (id) => {
      const run = runOf(id);
      return run === undefined ? 0 : this.distributions.last(run).downweighted;
    });
    perRun('motive_samples_quarantined', 'Samples whose current weight is 0.', (id) => {
      const run = runOf(id);
      return run === undefined ? 0 : this.distributions.last(run).quarantined;
    });
    perRun('motive_weights_version', 'Current weights version of the run.', (id) => runOf(id)?.weightsVersion ?? 0);
    perRun('motive_last_step', 'Highest optimizer step committed for the run.', (id) => runOf(id)?.lastStep ?? 0);
    perRun(
      'motive_query_set_version',
      'Newest query-set version of the run (0 before the first).',
      (id) => runOf(id)?.latestQuerySet()?.version ?? 0,
    );
    perRun('motive_query_set_age_seconds', 'Seconds since the newest query set was received (0 before the first).', (id) => {
      const qs = runOf(id)?.latestQuerySet();
      return qs === undefined ? 0 : Math.max(0, (Date.now() - qs.receivedAtMs) / 1000);
    });
    perRun('motive_queries', 'Query ids the run scores against.', (id) => runOf(id)?.queryIds.length ?? 0);

    const distributions = this.distributions;
    registry.registerMetric(
      new SnapshotMetric('motive_sample_weight', 'Distribution of the current per-sample weights.', 'histogram', () => {
        const out: SnapshotValue[] = [];
        for (const run of store.runs()) {
          const d = distributions.last(run);
          const labels = { run: run.info.id };
          WEIGHT_BUCKETS.forEach((le, b) =>
            out.push({ metricName: 'motive_sample_weight_bucket', labels: { ...labels, le }, value: d.weightCumulative[b] ?? 0 }),
          );
          out.push({ metricName: 'motive_sample_weight_bucket', labels: { ...labels, le: '+Inf' }, value: d.samples });
          out.push({ metricName: 'motive_sample_weight_sum', labels, value: d.weightSum });
          out.push({ metricName: 'motive_sample_weight_count', labels, value: d.samples });
        }
        return out;
      }) as unknown as Metric,
    );
    registry.registerMetric(
      new SnapshotMetric(
        'motive_sample_score',
        'Distribution of the current per-sample scores (mean of the query sums).',
        'summary',
        () => {
          const out: SnapshotValue[] = [];
          for (const run of store.runs()) {
            const d = distributions.last(run);
            const labels = { run: run.info.id };
            if (d.samples > 0) {
              SCORE_QUANTILES.forEach((q, i) => out.push({ labels: { ...labels, quantile: q }, value: d.scoreQuantiles[i] ?? NaN }));
            }
            out.push({ metricName: 'motive_sample_score_sum', labels, value: d.scoreSum });
            out.push({ metricName: 'motive_sample_score_count', labels, value: d.samples });
          }
          return out;
        },
      ) as unknown as Metric,
    );

    if (deps.liveStats !== undefined) {
      const liveStats = deps.liveStats;
      new Gauge({
        name: 'motive_live_clients',
        help: 'WebSocket live-feed clients connected.',
        registers,
        collect() {
          this.set(liveStats().clients);
        },
      });
      new Counter({
        name: 'motive_live_events_total',
        help: 'Live-feed events sent to clients, by event type.',
        labelNames: ['type'],
        registers,
        collect() {
          this.reset();
          for (const type of deps.liveEventTypes ?? []) this.inc({ type }, 0);
          for (const [type, n] of Object.entries(liveStats().sent)) this.inc({ type }, n);
        },
      });
      new Counter({
        name: 'motive_live_skipped_events_total',
        help: 'Live-feed events not sent to a client whose send buffer was full.',
        registers,
        collect() {
          this.reset();
          this.inc(liveStats().skipped);
        },
      });
      new Counter({
        name: 'motive_live_dropped_clients_total',
        help: 'Live-feed clients disconnected for staying too far behind.',
        registers,
        collect() {
          this.reset();
          this.inc(liveStats().dropped);
        },
      });
    }
  }

  /** Ingest observer: a batch was decoded and queued. */
  batchAccepted(runId: string, sketches: number, bytes: number): void {
    this.batchesIngested.inc({ run: runId });
    this.sketchesIngested.inc({ run: runId }, sketches);
    this.bytesIngested.inc({ run: runId }, bytes);
  }

  /** Ingest observer: a batch's Ack left, `latencyMs` after the batch was accepted. */
  batchAcked(runId: string, latencyMs: number): void {
    this.ackSeconds.observe({ run: runId }, latencyMs / 1000);
  }

  /** Ingest observer: a message was refused with `code`. */
  rejectedMessage(code: string): void {
    this.rejected.inc({ code });
  }

  /** Ingest observer: a trainer stream attached (+1) or detached (-1). */
  attached(runId: string, delta: 1 | -1): void {
    this.attachEvents.inc({ run: runId, event: delta > 0 ? 'attach' : 'detach' });
  }

  /** Engine listener: one group commit of one run. */
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
    if (!this.feedbackPendingSince.has(e.runId)) this.feedbackPendingSince.set(e.runId, performance.now());
  }

  /** Weighting listener: a new weights version was announced. */
  onWeightUpdate(e: WeightUpdateEvent): void {
    const labels = { run: e.runId };
    this.weightUpdates.inc(labels);
    if (e.newlyDownweighted.length > 0) this.newlyDownweighted.inc(labels, e.newlyDownweighted.length);
    const since = this.feedbackPendingSince.get(e.runId);
    if (since !== undefined) {
      this.feedbackSeconds.observe(labels, (performance.now() - since) / 1000);
      this.feedbackPendingSince.delete(e.runId);
    }
  }

  /**
   * Every run's labelled counters at 0 where nothing was counted yet (a run restored at start-up,
   * one that has had no weight update or query refresh), so dashboards read 0, not "No data".
   * Adding 0 leaves a counted series as it is.
   */
  private initRunLabels(): void {
    const counters = [
      this.batchesIngested,
      this.sketchesIngested,
      this.bytesIngested,
      this.batchesCommitted,
      this.weightUpdates,
      this.newlyDownweighted,
      this.queryRefreshes,
    ];
    for (const run of this.store.runs()) {
      const labels = { run: run.info.id };
      for (const c of counters) c.inc(labels, 0);
      for (const event of ['attach', 'detach']) this.attachEvents.inc({ ...labels, event }, 0);
    }
  }

  /** The Prometheus text exposition. */
  async render(): Promise<string> {
    // The run distributions in slices first, so a scrape does not hold the Acks behind one pass
    // over every sample; the collectors then read them as computed.
    for (const run of this.store.runs()) await this.distributions.refresh(run);
    this.initRunLabels();
    return this.registry.metrics();
  }

  /** Content type of {@link render}'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

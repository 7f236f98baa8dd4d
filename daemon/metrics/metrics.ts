/**
 * The daemon's Prometheus metrics, on a registry owned by the daemon (no global default registry).
 * Labels are bounded: `run` (one per run), `code` (error codes, a fixed set), `type` / `reason`
 * (fixed sets). Sample ids never become labels. Per-run state (samples, weights, scores, query
 * sets) is read at scrape time from the store's in-memory index, so it is always current and costs
 * nothing between scrapes.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { LiveFeedStats } from '../api/live-events.js';
import { DistributionCache, subscribeCommits, type CommitEvent, type InfluenceEngine } from '../influence/index.js';
import { ingestBatchAccepted, ingestBatchAcked, type Logger } from '../shared/index.js';
import type { Store } from '../store/index.js';
import { weightsUpdated } from '../weighting/index.js';
import { registerSidecarMetrics } from './sidecar.js';
import { IngestMetrics } from './ingest-metrics.js';
import { EngineMetrics } from './engine-metrics.js';
import { WeightingMetrics } from './weighting-metrics.js';
import { registerStoreMetrics } from './store-metrics.js';
import { registerRunMetrics } from './run-metrics.js';
import { registerLiveMetrics } from './live-metrics.js';

export { INGEST_REJECT_CODES } from './ingest-metrics.js';
export { LATENCY_BUCKETS_SECONDS } from './buckets.js';

export interface MetricsDeps {
  readonly store: Store;
  readonly engine: InfluenceEngine;
  /** The ingest server whose batches are counted (heard on `motive:ingest:*`); none counted when absent. */
  readonly ingest?: object;
  /** The weighting service whose updates are counted (heard on `motive:weighting:update`). */
  readonly weighting?: object;
  /** Attached trainer streams per run. */
  readonly attachedCounts: () => Map<string, number>;
  /** Live feed counters, when the feed runs. */
  readonly liveStats?: () => LiveFeedStats;
  /** The live feed's event types, shown at 0 before the first is sent. */
  readonly liveEventTypes?: readonly string[];
  /** Where a failure of a channel subscriber is logged. */
  readonly log?: Logger;
}

/**
 * Every Motive metric, one collector per subsystem: ingest-metrics.ts, engine-metrics.ts,
 * weighting-metrics.ts, store-metrics.ts, run-metrics.ts, sidecar.ts, live-metrics.ts. It hears
 * the engine's commits, ingest's accepted and acknowledged batches and the weighting service's
 * updates on their channels (docs/observability.md, "Channels") until {@link MotiveMetrics.close};
 * ingest's refusals and attachments it is told as the ingest observer (it satisfies its shape).
 * Render with `registry.metrics()`.
 */
export class MotiveMetrics {
  readonly registry: Registry;
  private readonly ingest: IngestMetrics;
  private readonly engine: EngineMetrics;
  private readonly weighting: WeightingMetrics;
  private readonly distributions = new DistributionCache();
  private readonly store: Store;
  private readonly unsubscribe: Array<() => void>;

  constructor(deps: MetricsDeps, options: { readonly processMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    this.store = deps.store;
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: registry });
      // prom-client also exports these totals as gauges named `_total`, which Prometheus reserves for
      // counters (promtool rejects them); the per-type gauges without the suffix carry the same data.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        registry.removeSingleMetric(name);
      }
    }
    this.ingest = new IngestMetrics(registry, deps.store, deps.attachedCounts);
    this.engine = new EngineMetrics(registry, deps.engine);
    this.weighting = new WeightingMetrics(registry);
    registerSidecarMetrics(registry, deps.store);
    registerStoreMetrics(registry, deps.store);
    registerRunMetrics(registry, deps.store, this.distributions);
    if (deps.liveStats !== undefined) registerLiveMetrics(registry, deps.liveStats, deps.liveEventTypes ?? []);
    this.unsubscribe = this.subscribe(deps);
  }

  /** The channel subscriptions: the engine's commits, and ingest's and weighting's events when given. */
  private subscribe(deps: MetricsDeps): Array<() => void> {
    const onError = (err: unknown): void => deps.log?.error({ err }, 'metrics channel subscriber failed');
    const out = [subscribeCommits(deps.engine, (e) => this.onCommit(e), onError)];
    if (deps.ingest !== undefined) {
      out.push(
        ingestBatchAccepted.subscribe(deps.ingest, (b) => this.ingest.batchAccepted(b.runId, b.samples, b.bytes), onError),
        ingestBatchAcked.subscribe(deps.ingest, (a) => this.ingest.batchAcked(a.runId, a.ackedAt - a.submittedAt), onError),
      );
    }
    if (deps.weighting !== undefined) out.push(weightsUpdated.subscribe(deps.weighting, (e) => this.weighting.onWeightUpdate(e), onError));
    return out;
  }

  /** Stops hearing the channels. */
  close(): void {
    for (const u of this.unsubscribe) u();
  }

  /** Ingest observer: a message was refused with `code`. */
  rejectedMessage(code: string): void {
    this.ingest.rejectedMessage(code);
  }

  /** Ingest observer: a trainer stream attached (+1) or detached (-1). */
  attached(runId: string, delta: 1 | -1): void {
    this.ingest.attached(runId, delta);
  }

  /** One group commit of one run (from the engine's channel). */
  onCommit(e: CommitEvent): void {
    this.engine.onCommit(e);
    this.weighting.committed(e.runId);
  }

  /**
   * Every run's labelled counters at 0 where nothing was counted yet (a run restored at start-up,
   * one that has had no weight update or query refresh), so dashboards read 0, not "No data".
   * Adding 0 leaves a counted series as it is.
   */
  private initRunLabels(): void {
    for (const run of this.store.runs()) {
      this.ingest.initRun(run.info.id);
      this.engine.initRun(run.info.id);
      this.weighting.initRun(run.info.id);
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

/**
 * Weighting metrics (docs/observability.md): weight updates announced, samples down-weighted for
 * the first time, and the feedback latency from a commit to the weight update that reflects it.
 * Fed the weighting service's updates and told of commits by {@link MotiveMetrics}, which hears both on their channels.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { WeightUpdateEvent } from '../weighting/index.js';
import { LATENCY_BUCKETS_SECONDS } from './buckets.js';

export class WeightingMetrics {
  private readonly feedbackSeconds: Histogram<'run'>;
  private readonly weightUpdates: Counter<'run'>;
  private readonly newlyDownweighted: Counter<'run'>;
  /** run → time (performance.now ms) of the oldest commit not yet reflected in a weight update. */
  private readonly feedbackPendingSince = new Map<string, number>();

  constructor(registry: Registry) {
    const registers = [registry];
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
  }

  /** A group of the run committed: its feedback wait starts, unless one runs already. */
  committed(runId: string): void {
    if (!this.feedbackPendingSince.has(runId)) this.feedbackPendingSince.set(runId, performance.now());
  }

  /** A new weights version was announced (`motive:weighting:update`). */
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

  /** The run's counters at 0 where nothing was counted yet. */
  initRun(runId: string): void {
    const labels = { run: runId };
    this.weightUpdates.inc(labels, 0);
    this.newlyDownweighted.inc(labels, 0);
  }
}

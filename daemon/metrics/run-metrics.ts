/**
 * Per-run state metrics (docs/observability.md): samples tracked, down-weighted and quarantined,
 * weights and query-set versions, and the distributions of the current weights and scores. Read
 * at scrape time from the store's in-memory index and the distributions `render` refreshed.
 */
import { Gauge, type Metric, type Registry } from 'prom-client';
import { SCORE_QUANTILES, WEIGHT_BUCKETS, type DistributionCache } from '../influence/index.js';
import type { Store } from '../store/index.js';
import { SnapshotMetric, type SnapshotValue } from './snapshot-metric.js';

export function registerRunMetrics(registry: Registry, store: Store, distributions: DistributionCache): void {
  const registers = [registry];
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
  perRun('motive_samples_tracked', 'Samples with evidence in the run.', (id) => runOf(id)?.samples.size ?? 0);
  perRun('motive_samples_downweighted', 'Samples whose current weight is below 1.', (id) => {
    const run = runOf(id);
    return run === undefined ? 0 : distributions.last(run).downweighted;
  });
  perRun('motive_samples_quarantined', 'Samples whose current weight is 0.', (id) => {
    const run = runOf(id);
    return run === undefined ? 0 : distributions.last(run).quarantined;
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

  registerDistributions(registry, store, distributions);
}

/** The current weights as a histogram and the current scores as a summary, per run. */
function registerDistributions(registry: Registry, store: Store, distributions: DistributionCache): void {
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
    new SnapshotMetric('motive_sample_score', 'Distribution of the current per-sample scores (mean of the query sums).', 'summary', () => {
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
    }) as unknown as Metric,
  );
}

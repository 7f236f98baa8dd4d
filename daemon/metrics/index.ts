export { MotiveMetrics, LATENCY_BUCKETS_SECONDS, INGEST_REJECT_CODES, type LiveFeedStats, type MetricsDeps } from './metrics.js';
export { registerMetricsRoute } from './route.js';
export {
  DistributionCache,
  computeDistribution,
  weightCounts,
  SCORE_BINS,
  SCORE_QUANTILES,
  WEIGHT_BUCKETS,
  type RunDistribution,
} from './distribution.js';
